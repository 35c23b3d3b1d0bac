"""What two or more services share, by kind, each folder importing only those before it:
``contracts`` (keys, messages, records), ``config`` (settings), ``infra`` (connections, streams,
process plumbing) and ``cli`` (the shared command line).

A module only one service uses lives in that service (docs/architecture.md)."""
