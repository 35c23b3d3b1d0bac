"""`owc run`: embedded Redis + the services (one process, or one per service), restarts, clean Ctrl+C,
and a runner that never fights another program (a taken port, a second run on one data folder)."""

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


VISION_LIBRARIES = ("cv2", "numpy", "onnxruntime")


def _vision_mapped(pid: int) -> list[str]:
    """The vision libraries a running process has loaded (its memory maps: what it really carries)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [lib for lib in VISION_LIBRARIES if f"/{lib}/" in maps or f"/{lib}." in maps]


def test_processes_mode_starts_everything_restarts_a_killed_child_and_stops_cleanly(tmp_path: Path) -> None:
    # capture talks to an OBS that is not running: it must keep retrying, not crash
    stack = Stack(tmp_path, "--processes", settings={"obs.port": 1, "run.restart_backoff_max_s": 1}).start()
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
        # a process that decodes no frame carries no vision stack (the supervisor neither)
        assert stack.proc is not None
        for name, pid in [("supervisor", stack.proc.pid), ("state", children["state"].pid),
                          ("gateway", children["gateway"].pid), ("capture", children["capture"].pid)]:
            assert _vision_mapped(pid) == [], name
        assert _vision_mapped(children["inference"].pid)  # the one that does, does

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


def test_one_process_serves_every_metric_and_survives_a_kill_9_of_the_process(tmp_path: Path) -> None:
    """Default `owc run`: a stdlib-only keeper, redis-server, one stack process (every service a thread)."""
    stack = Stack(tmp_path, settings={"obs.port": 1, "run.restart_backoff_max_s": 1}).start()
    try:
        children = wait_until(lambda: (c := stack.children()) and {"redis", "stack"} == set(c) and c,
                              timeout=30, message="redis + the stack process")
        assert stack.proc is not None
        assert _vision_mapped(stack.proc.pid) == []  # the keeper
        # one /metrics, the gateway's, carries every service's metrics
        wait_until(lambda: all(f"owc_{s}_" in httpx.get(f"{stack.base_url}/metrics").text
                               for s in ("capture", "inference", "state", "gateway")),
                   timeout=30, message="every service's metrics on the gateway's /metrics")
        said = "capture.metrics_port, inference.metrics_port, state.metrics_port, actions.metrics_port: " \
               "not used in one process"
        assert stack.log().count(said) == 1  # accepted, and said once
        # the log names the address the gateway binds, not a name for it
        assert f"gateway on http://127.0.0.1:{stack.gateway_port} " in stack.log()
        assert "localhost" not in stack.log()
        victim = children["stack"]
        victim.kill()
        wait_until(lambda: (c := stack.children().get("stack")) is not None and c.pid != victim.pid,
                   timeout=20, message="the stack process to be restarted")
        wait_until(stack.healthy, timeout=30, message="the gateway back")
        assert "stack was killed by SIGKILL" in stack.log()
        assert stack.children()["redis"].pid == children["redis"].pid  # Redis (and its data) untouched
        pids = stack.all_pids()
    finally:
        code = stack.stop()
    assert code == 0, stack.log()[-3000:]
    wait_until(lambda: all(_gone(pid) for pid in pids), timeout=5, message="no process left behind")
    assert "all services stopped" in stack.log()


def test_a_taken_gateway_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as other:  # another program (Grafana, say) on the gateway's port
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        stack = Stack(tmp_path, settings={"gateway.port": taken})
        proc = subprocess.run(stack.argv, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env=_clean_env())
    assert proc.returncode == 2, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("owc: ")]
    assert f"port {taken} on 127.0.0.1 is already in use" in line
    assert "gateway.port" in line and "OWC_GATEWAY__PORT" in line and "--set gateway.port=" in line
    assert "Traceback" not in proc.stderr and not (tmp_path / "data" / "appendonlydir").exists()


def test_a_second_run_on_the_same_data_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    import subprocess

    first = Stack(tmp_path / "home", settings={"obs.port": 1}).start()
    try:
        assert first.proc is not None
        # README's advice for a busy Redis port (another port), the same data folder
        second = Stack(tmp_path / "home", settings={"obs.port": 1, "redis.data_dir": str(tmp_path / "home" / "data")})
        proc = subprocess.run(second.argv, cwd=tmp_path / "home", capture_output=True, text=True, timeout=60,
                              env=_clean_env())
        assert proc.returncode == 2, proc.stderr
        [line] = [x for x in proc.stderr.splitlines() if x.startswith("owc: ")]
        assert f"the data folder {tmp_path / 'home' / 'data'} is in use by another `owc run`" in line
        assert f"pid {first.proc.pid}" in line and "`owc run`" in line
        redis_servers = [p for p in psutil.process_iter(["name", "cwd", "cmdline"])
                         if (p.info["name"] or "").startswith("redis-server")
                         and str(second.redis_port) in " ".join(p.info["cmdline"] or [])]
        assert redis_servers == []  # never a second Redis on one AOF
        assert first.healthy()
    finally:
        assert first.stop() == 0


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}


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
        children = wait_until(lambda: (c := stack.children()) and "stack" in c and c, timeout=30,
                              message="the stack process")
        assert stack.status()["channel"] == "default"  # the children did get the Redis URL and its password
        assert stack.proc is not None  # the keeper's own command line (it carries the plan) too
        children["keeper"] = psutil.Process(stack.proc.pid)
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

    from services.runner import announce
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
    monkeypatch.setattr(announce, "OBS_REMINDER_S", 0.1)
    stop = th.Event()
    caplog.set_level("INFO", logger="owc.run")
    t = th.Thread(target=announce.announce_when_up,
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
