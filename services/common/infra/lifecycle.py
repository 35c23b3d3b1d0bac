"""Stop events and signal handling shared by the service entrypoints."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger("owc")


def stop_on_signals(stop: threading.Event, logger: logging.Logger = log) -> None:
    """Set ``stop`` on SIGINT/SIGTERM so loops end cleanly (main thread only)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
