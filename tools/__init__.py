"""Tools around the product, not part of it: the benchmarks (``owc bench …``), a headless OBS,
a private redis-server and an untrained stand-in model for the benches and the tests.

The Docker image ships only ``services/``; ``services.cli`` registers the bench commands from
here when this package is present (a checkout), and explains otherwise.
"""
