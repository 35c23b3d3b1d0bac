"""What the services agree on about the data in Redis: key names, message and record shapes, their encoding.

A module here names keys, declares a message or record, or reads and writes one kind of record. It
imports no other folder of ``services.common`` (one exception: docs/architecture.md)."""
