"""The gateway's uvicorn server, quiet while nobody is connected.

uvicorn wakes 10 times a second to look at its exit flag and, once a second,
refreshes the ``Date`` header — most of an idle stack's gateway CPU. This
server ticks once a second while a connection is open (the header stays
fresh) and not at all while none is: a new connection refreshes the header
before its first request is read, a signal or the ``stop`` event of `owc run`
wakes the loop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

TICK_S = 1.0  # while a connection is open: uvicorn's per-second work (the Date header)
STOP_WATCH_S = 30.0  # the stop watcher's own check that the server is still running (no other wake-up)


class _Connections(set[Any]):
    """uvicorn's set of open connections; adding one calls ``on_add`` first (in the event loop)."""

    def __init__(self, on_add: Callable[[], None]) -> None:
        super().__init__()
        self.on_add = on_add

    def add(self, connection: Any) -> None:
        self.on_add()
        super().add(connection)


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stop: threading.Event | None, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.stop = stop  # a thread of `owc run`: stop when it is set
        self.on_exit = on_exit  # before exiting (the gateway closes its SSE streams)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server_state.connections = _Connections(self._connection_made)

    def _connection_made(self) -> None:
        if not self.server_state.connections:  # the loop was not ticking: the Date header may be old
            self._refresh_headers()
            if self._wake is not None:
                self._wake.set()

    def _refresh_headers(self) -> None:
        # what uvicorn's on_tick does once a second (counter % 10 == 0), without its exit checks
        from email.utils import formatdate

        date = [(b"date", formatdate(usegmt=True).encode())] if self.config.date_header else []
        self.server_state.default_headers = date + self.config.encoded_headers

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(wake.set)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)
        self._wake_up()
        # uvicorn re-raises the signal after shutting down (exit status -15); a clean
        # stop on request is a success for the runner and for systemd/docker.
        self._captured_signals.clear()

    def _watch_stop(self, stop: threading.Event) -> None:
        while not stop.wait(STOP_WATCH_S):
            if self.should_exit or self._loop is None or self._loop.is_closed():
                return
        self._wake_up()

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self.stop is not None:
            threading.Thread(target=self._watch_stop, args=(self.stop,), name="gateway-stop", daemon=True).start()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # on_tick's "once a second" is counter % 10 == 0
            self._wake.clear()
            timeout = TICK_S if self.server_state.connections else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            should_exit = await self.on_tick(counter)

    async def on_tick(self, counter: int) -> bool:
        if self.stop is not None and self.stop.is_set() and not self.should_exit:
            self.on_exit()
            self.should_exit = True
        return await super().on_tick(counter)
