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


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def hold_stop_signals() -> None:
    """Hold SIGINT/SIGTERM (block them in this thread and the threads and programs it starts) until released.

    `owc run` holds them from its first line until the keeper it ``exec``s into has its handlers: a
    blocked signal stays pending across ``exec``, so one that comes while the settings load is taken
    by the keeper, which then stops before starting anything. Without it such a signal was lost: a
    background job of a non-interactive shell (``owc run &`` in a script) starts with SIGINT ignored, and
    the handler that ``owc run`` installs before it becomes the keeper does not survive the ``exec``.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    """Deliver the stop signals held by :func:`hold_stop_signals` (install the handlers first)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
