"""`owc run`: embedded Redis + four services, restart of a killed child, clean Ctrl+C."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.support.redis_proc import RedisServer
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_run_starts_everything_restarts_a_killed_child_and_stops_cleanly(tmp_path: Path) -> None:
    # capture talks to an OBS that is not running: it must keep retrying, not crash
    stack = Stack(tmp_path, settings={"obs.port": 1, "run.restart_backoff_max_s": 1}).start()
    try:
        children = wait_until(
            lambda: (c := stack.children()) and {"redis", "capture", "inference", "state", "gateway"} <= set(c) and c,
            timeout=30,
            message="redis + four services",
        )
        # the embedded Redis is real, AOF on, in the data dir
        client = redis.Redis.from_url(stack.redis_url)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert Path(client.config_get("dir")["dir"]) == tmp_path / "data"
        client.close()

        victim = children["state"]
        victim.kill()
        wait_until(
            lambda: "state" in stack.children() and stack.children()["state"].pid != victim.pid,
            timeout=20,
            message="state to be restarted",
        )
        assert "state was killed by SIGKILL" in stack.log()
        assert stack.healthy()
        pids = stack.all_pids()
    finally:
        started = time.monotonic()
        code = stack.stop()
    assert code == 0, stack.log()[-3000:]
    assert time.monotonic() - started < 10
    wait_until(lambda: all(_gone(pid) for pid in pids), timeout=5, message="no process left behind")
    assert "all services stopped" in stack.log()


def test_secrets_never_reach_a_command_line_or_the_log(tmp_path: Path, own_redis: RedisServer) -> None:
    """`ps` shows every local user each process's argv: the children get settings in their environment."""
    password, token = "Redis-pw-7f3a9c", "Admin-token-51d2e8"
    client = own_redis.client()
    client.config_set("requirepass", password)
    client.close()
    url = f"redis://:{password}@127.0.0.1:{own_redis.port}/0"
    stack = Stack(
        tmp_path, settings={"redis.url": url, "gateway.admin_token": token, "obs.port": 1, "obs.password": token}
    ).start()
    try:
        children = wait_until(
            lambda: (c := stack.children()) and {"capture", "inference", "state", "gateway"} <= set(c) and c,
            timeout=30,
            message="four services",
        )
        assert stack.status()["channel"] == "default"  # the children did get the Redis URL and its password
        for name, child in children.items():
            cmdline = " ".join(child.cmdline())
            assert password not in cmdline and token not in cmdline, (name, cmdline)
            environ = Path(f"/proc/{child.pid}/environ")
            assert environ.stat().st_mode & 0o077 == 0  # the environment is the user's own business
            assert f"OWC_GATEWAY__ADMIN_TOKEN={token}".encode() in environ.read_bytes()
        # the admin token is in force in the gateway it was passed to
        refused = httpx.post(f"{stack.base_url}/api/v1/channels/default/undo", json={})
        assert refused.status_code == 401
    finally:
        code = stack.stop()
    assert code == 0, stack.log()[-3000:]
    log = stack.log()
    assert "using Redis at redis://:***@127.0.0.1" in log
    assert password not in log and token not in log


def test_while_capture_waits_for_obs_the_runner_keeps_saying_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`make run` without OBS: after "ready", a reminder every ~30 s (here 0.1 s) instead of silence."""
    import http.server
    import json as json_mod
    import threading as th

    from services.runner import stack
    from tests.support.waiting import wait_until

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok" if self.path == "/healthz" else json_mod.dumps(
                {"health": {"obs_connected": False, "capture_error": "OBS is not reachable"}}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    th.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(stack, "OBS_REMINDER_S", 0.1)
    stop = th.Event()
    caplog.set_level("INFO", logger="owc.run")
    t = th.Thread(target=stack._announce_when_up,
                  args=("127.0.0.1", server.server_address[1], "default", stop, "ws://127.0.0.1:4455"))
    t.start()
    try:
        wait_until(lambda: any("waiting for OBS at ws://127.0.0.1:4455" in r.getMessage() for r in caplog.records),
                   timeout=10, message="the reminder")
        line = next(r.getMessage() for r in caplog.records if "waiting for OBS" in r.getMessage())
        assert "OBS is not reachable" in line and "/admin for details" in line
        assert any(r.getMessage().startswith("ready") for r in caplog.records)
    finally:
        stop.set()
        t.join(5)
        server.shutdown()
