"""How the services talk and run: Redis connections, consumer groups, the command round trip, the
burst hint, free ports, stop signals, logging, metrics, file hashing.

Imports ``contracts`` and ``config``."""
