"""A real HTTP receiver on 127.0.0.1 for the webhook tests and the benches (a threaded ``http.server``).

Every request is recorded (path, headers, body, when). Behaviour is
scripted per request: a queue of responses (status, delay) is used first,
then the default; :meth:`hold` makes the next request hang until
:meth:`release`, to kill the sender while a delivery is in flight.

Two hostile answers, for the tests that bound a delivery: ``body_bytes``
streams a 200 with a body that large (counted in ``body_sent`` as far as the
sender lets it), ``trickle_s`` sends the whole answer one byte at a time
with that pause between bytes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.common.infra.ports import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    wall: float = 0.0  # time.time() when it arrived (to compare with an event's ts)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    default_status: int = 200
    default_delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _script: deque[tuple[int, float]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hold_next: bool = False
    _held: threading.Event = field(default_factory=threading.Event)  # a request is hanging
    _release: threading.Event = field(default_factory=threading.Event)
    held_key: str = ""  # the idempotency key of the request :meth:`hold` caught
    body_bytes: int = 0  # > 0: answer 200 with a streamed body this large
    body_sent: int = 0  # bytes of that body written before the sender hung up
    trickle_s: float = 0.0  # > 0: send the answer one byte at a time, this long apart
    trickle_ends: list[float] = field(default_factory=list)  # when each trickled answer stopped (monotonic)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *responses: tuple[int, float]) -> None:
        """The next requests get these ``(status, delay_s)`` answers, in order."""
        with self._lock:
            self._script.extend(responses)

    def hold(self) -> None:
        """The next request hangs until :meth:`release` (then it is answered 200)."""
        with self._lock:
            self._hold_next = True
            self._release.clear()
            self._held.clear()

    def wait_held(self, timeout: float = 10.0) -> bool:
        return self._held.wait(timeout)

    def release(self) -> None:
        self._release.set()

    def unique_keys(self) -> set[str]:
        return {r.key for r in self.snapshot()}

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(),
                        time.time()))
                    hold = receiver._hold_next
                    receiver._hold_next = False
                    status, delay = receiver._script.popleft() if receiver._script else (
                        receiver.default_status, receiver.default_delay_s)
                if hold:
                    receiver.held_key = receiver.requests[-1].key
                    receiver._held.set()
                    receiver._release.wait(60)
                    status, delay = 200, 0.0
                if receiver.body_bytes:
                    self._stream_body(receiver.body_bytes)
                    return
                if receiver.trickle_s:
                    self._trickle(receiver.trickle_s)
                    return
                if delay:
                    time.sleep(delay)  # the receiver being slow is what is under test
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout) or died

            def _stream_body(self, size: int) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b"x" * (1 << 16)
                try:
                    while receiver.body_sent < size:
                        part = chunk[: size - receiver.body_sent]
                        self.wfile.write(part)
                        receiver.body_sent += len(part)
                except OSError:
                    pass  # the sender hung up: what it read is bounded by body_sent
                self.close_connection = True

            def _trickle(self, pause: float) -> None:
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n" + b"x" * 400
                try:
                    for i in range(len(answer)):
                        self.wfile.write(answer[i:i + 1])
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    pass
                with receiver._lock:
                    receiver.trickle_ends.append(time.monotonic())
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
