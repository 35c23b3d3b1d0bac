"""The ``owc bench …`` measurements, one module per part (``stack`` = the whole stack)."""
