"""The gateway's server does not tick while nobody is connected, and still answers with a fresh Date
header, stops on the `owc run` stop event at once, and ticks while a connection is open."""

from __future__ import annotations

import http.client
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import uvicorn

from services.gateway.server import QuietServer
from tests.support.ports import free_port
from tests.support.waiting import wait_until


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


class CountingServer(QuietServer):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


def start(stop: threading.Event) -> tuple[CountingServer, threading.Thread, int, list[int]]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    exits: list[int] = []
    server = CountingServer(config, stop, lambda: exits.append(1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, message="the server started")
    return server, thread, port, exits


def test_idle_without_ticks_then_a_fresh_date_and_a_prompt_stop() -> None:
    stop = threading.Event()
    server, thread, port, exits = start(stop)
    ticks = server.ticks
    time.sleep(2.5)  # nobody connected: no tick in this time (uvicorn alone: 25)
    assert server.ticks == ticks
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.read() == b"ok"
    date = parsedate_to_datetime(resp.getheader("date") or "")
    assert abs(date.timestamp() - time.time()) < 1.5  # refreshed when the connection came, not at start
    # a connection is open: the per-second tick is back
    wait_until(lambda: server.ticks >= ticks + 2, timeout=5, message="ticks while a connection is open")
    conn.close()
    began = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - began < 1.5
    assert exits  # the SSE streams were closed first
