"""Logging a streamer can read: one line per event, service name first."""

from __future__ import annotations

import logging
import sys

from services.common.config.redact import mask_credentials

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Masks credentials in URLs (``redis://:pw@host``) in every line, tracebacks included:
    a password must not reach a log because some library put the URL in an exception."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_credentials(super().format(record))


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once per process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(_FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    # third-party chatter that would drown the service's own lines
    for noisy in ("obsws_python", "websocket", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
