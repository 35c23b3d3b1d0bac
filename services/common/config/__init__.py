"""Configuration: the ``owc.toml`` sections, their layered loading (defaults < file < ``OWC_`` env <
flags), the rows ``owc config show`` prints, and the masking of the credentials they carry.

Imports ``contracts`` only."""
