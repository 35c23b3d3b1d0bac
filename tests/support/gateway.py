"""Run the gateway and the state service for tests, read SSE, launch the system Chromium.

- :class:`GatewayThread`: ``create_app(settings)`` under a real uvicorn in a
  background thread, on a free port (restartable on the same port).
- :class:`ServiceProcess`: ``owc state`` / ``owc gateway`` as subprocesses.
- :class:`SSEReader`: a raw SSE client (httpx stream in a thread) that
  records every event (``id``, ``data`` parsed as JSON) and comment.
- :func:`launch_chromium`: Playwright driving Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from services.common.config.settings import Settings, load_settings
from services.common.contracts.keys import GROUP_STATE, Keys
from tests.support.ports import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# `make screenshots` points this at docs/img to refresh the pictures the docs show
SCREENSHOTS = Path(os.environ.get("OWC_SCREENSHOTS") or ROOT / "artifacts" / "screenshots")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def settings_for(redis_url: str, prefix: str, **flat: Any) -> Settings:
    """Settings on a given Redis and key prefix, plus dotted-key overrides."""
    return load_settings(overrides={"redis.url": redis_url, "redis.prefix": prefix, **flat}).settings


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().serve(sockets)

        @contextmanager
        def capture_signals(self) -> Iterator[None]:  # not the main thread: no signal handlers
            yield

    return Server


class GatewayThread:
    """The gateway app under uvicorn in a thread of the test process."""

    def __init__(self, settings: Settings, config_dir: Path | None = None, port: int | None = None) -> None:
        self.settings = settings
        self.config_dir = config_dir
        self.port = port or free_port()
        self.app: Any = None
        self.server: Any = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayThread:
        import uvicorn

        from services.gateway.app import create_app

        self.app = create_app(self.settings, self.config_dir)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
            lifespan="on",
        )
        self.server = _server_class()(config)
        self.thread = threading.Thread(target=self.server.run, name=f"gateway-{self.port}", daemon=True)
        self.thread.start()
        wait_until(lambda: http_ok(f"{self.url}/healthz"), timeout=15, message=f"gateway on {self.url}")
        return self

    @property
    def hubs(self) -> Any:
        return self.app.state.runtime.hubs

    def stop(self) -> None:
        if self.server is None or self.thread is None:
            return
        runtime = getattr(self.app.state, "runtime", None)
        loop = getattr(self.server, "loop", None)
        if runtime is not None and loop is not None:
            # end the SSE streams first (what `owc gateway` does on SIGTERM)
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(runtime.hubs.close_all)
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "gateway thread did not stop"
        self.server = None
        self.thread = None

    def restart(self) -> None:
        self.stop()
        self.start()


class ServiceProcess:
    """``owc <service> …`` as a subprocess with its output in a log file."""

    def __init__(self, workdir: Path, service: str, settings: dict[str, Any], *args: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.service = service
        self.argv = [sys.executable, "-m", "services", service, *args]
        for key, value in settings.items():
            text = json.dumps(value) if isinstance(value, bool | list) else str(value)
            self.argv += ["--set", f"{key}={text}"]
        self.log_path = workdir / f"{service}-{id(self)}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
        env["PYTHONUNBUFFERED"] = "1"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill: bool = False) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        self._log.close()
        return code


def state_settings(redis_url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"redis.url": redis_url, "redis.prefix": prefix, "state.metrics_port": 0, **extra}


def start_state(workdir: Path, redis_url: str, prefix: str, **extra: Any) -> ServiceProcess:
    """``owc state`` on ``prefix``; returns once it has created its consumer groups."""
    proc = ServiceProcess(workdir, "state", state_settings(redis_url, prefix, **extra)).start()
    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_url)

    def ready() -> bool:
        assert proc.alive(), f"owc state exited:\n{proc.log()[-3000:]}"
        try:
            groups = client.xinfo_groups(keys.commands)
        except redis.ResponseError:
            return False
        return any(g["name"] in (GROUP_STATE, GROUP_STATE.encode()) for g in groups)

    try:
        wait_until(ready, timeout=30, message="owc state to create its consumer groups")
        # and to hold the lease (a command is answered)
    finally:
        client.close()
    return proc


def start_gateway_process(
    workdir: Path, redis_url: str, prefix: str, port: int | None = None, **extra: Any
) -> tuple[ServiceProcess, str]:
    port = port or free_port()
    proc = ServiceProcess(
        workdir, "gateway", {"redis.url": redis_url, "redis.prefix": prefix, "gateway.port": port, **extra}
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/healthz") or not proc.alive(), timeout=30, message="owc gateway")
    assert proc.alive(), f"owc gateway exited:\n{proc.log()[-3000:]}"
    return proc, url


@dataclass
class SSEEvent:
    id: str | None
    data: Any
    event: str | None = None


@dataclass
class SSEReader:
    """Reads one SSE stream in a thread; ``next()`` returns events, comments are counted."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: queue.Queue[SSEEvent | Exception | None] = field(default_factory=queue.Queue)
    comments: list[str] = field(default_factory=list)
    status_code: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _response: Any = None

    def start(self) -> SSEReader:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(30, read=60)) as client,
                client.stream("GET", self.url, headers=self.headers) as resp,
            ):
                self._response = resp
                self.status_code = resp.status_code
                ev_id: str | None = None
                ev_name: str | None = None
                data: list[str] = []
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        break
                    if line == "":
                        if data:
                            self.events.put(SSEEvent(ev_id, json.loads("\n".join(data)), ev_name))
                        ev_id, ev_name, data = None, None, []
                    elif line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "data":
                            data.append(value)
                        elif name == "id":
                            ev_id = value
                        elif name == "event":
                            ev_name = value
        except Exception as exc:
            if not self._stop.is_set():
                self.events.put(exc)
        finally:
            self.events.put(None)

    def next(self, timeout: float = 10.0) -> SSEEvent:
        item = self.events.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        if item is None:
            raise EOFError("the SSE stream ended")
        return item

    def next_with_id(self, timeout: float = 10.0) -> SSEEvent:
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next(max(0.01, deadline - time.monotonic()))
            if ev.id is not None and ev.data.get("event") is not None:
                return ev

    def close(self) -> None:
        self._stop.set()
        if self._response is not None:
            with suppress(Exception):
                self._response.close()
        if self._thread is not None:
            # a read blocked in another thread only returns with the next bytes (a ping at the latest);
            # the thread is a daemon, so don't wait long for it
            self._thread.join(timeout=2)


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser on Debian's Chromium (never `playwright install`)."""
    import pytest

    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def post_json(base: str, path: str, body: Any, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=30)
