"""`owc run` stopped by a signal to its pid alone, as a script or a service manager sends it (not the
terminal's Ctrl+C, which reaches the whole process group), and killed -9: nothing is left running."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    env["OWC_HOME"] = str(home)
    return env


def _launch(stack: Stack, how: str) -> int:
    """Start `owc run` the way ``how`` says; its pid.

    - "background job": ``owc run &`` in a non-interactive shell, which starts it with SIGINT ignored
      (no job control: POSIX shells do that so a terminal's Ctrl+C spares background jobs);
    - "own session": a session and process group of its own, as a service manager starts it.
    """
    if how == "background job":
        script = f"{shlex.join(stack.argv)} >{shlex.quote(str(stack.log_path))} 2>&1 & echo $!"
        out = subprocess.run(["/bin/sh", "-c", script], cwd=stack.workdir, env=_env(stack.workdir),
                             capture_output=True, text=True, timeout=10, check=True)
        return int(out.stdout.strip())
    with stack.log_path.open("wb") as log:
        proc = subprocess.Popen(stack.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=stack.workdir, env=_env(stack.workdir), start_new_session=True)
    return proc.pid


def _tree(pid: int) -> list[int]:
    try:
        return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _reap(pid: int) -> None:
    """Our own child (own session) must not stay a zombie; a background job's was the shell's."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _held(pid: int, sig: signal.Signals) -> bool:
    """``sig`` is blocked in ``pid`` (held for later, not lost), read from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def _redis_servers_on(port: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if (p.info["name"] or "").startswith("redis-server") and str(port) in " ".join(p.info["cmdline"] or [])]


@pytest.mark.parametrize(("how", "sig"), [("background job", signal.SIGINT), ("background job", signal.SIGTERM),
                                          ("own session", signal.SIGINT)])
def test_a_signal_to_the_pid_alone_stops_the_services_then_redis(
        tmp_path: Path, how: str, sig: signal.Signals) -> None:
    stack = Stack(tmp_path, settings={"obs.port": 1})
    pid = _launch(stack, how)
    try:
        wait_until(stack.healthy, timeout=60, message=f"the stack to answer /healthz (log: {stack.log_path})")
        wait_until(lambda: len(psutil.Process(pid).children()) == 2, timeout=30,
                   message="the keeper's redis-server and stack process")
        pids = _tree(pid)
        os.kill(pid, sig)
        wait_until(lambda: all(_gone(p) for p in pids), timeout=20, message="every process to end")
    finally:
        for p in reversed(_tree(pid)):  # a failed run leaves nothing behind for the next test
            if not _gone(p):
                os.kill(p, signal.SIGKILL)
        _reap(pid)
    lines = stack.log().splitlines()

    def first(prefix: str, text: str) -> int:
        return next((i for i, line in enumerate(lines) if line.startswith(prefix) and text in line), -1)

    # in order: the keeper takes the signal, the services (the stack process) stop, then Redis
    taken = first("", f"owc.run: received {sig.name}, stopping")
    services_done = first("stack | ", "all services stopped")
    redis_stopping = first("redis | ", "Received SIGTERM")
    assert 0 <= taken < services_done < redis_stopping, "\n".join(lines[-40:])
    assert _redis_servers_on(stack.redis_port) == []


def test_a_signal_while_owc_run_starts_is_held_for_the_keeper_not_lost(tmp_path: Path) -> None:
    """SIGINT while the settings load (SIGINT ignored: a background job) stops it before anything starts."""
    stack = Stack(tmp_path, settings={"obs.port": 1})
    pid = _launch(stack, "background job")
    try:
        wait_until(lambda: _held(pid, signal.SIGINT), timeout=10, message="`owc run` to hold SIGINT")
        os.kill(pid, signal.SIGINT)
        wait_until(lambda: all(_gone(p) for p in _tree(pid)), timeout=30, message="`owc run` to end")
    finally:
        for p in reversed(_tree(pid)):
            if not _gone(p):
                os.kill(p, signal.SIGKILL)
    log = stack.log()
    assert "received SIGINT, stopping" in log and "stopped before anything was started" in log, log[-3000:]
    assert "started redis" not in log and _redis_servers_on(stack.redis_port) == []
    assert not stack.healthy()


def test_a_keeper_killed_9_leaves_nothing_running(tmp_path: Path) -> None:
    stack = Stack(tmp_path, settings={"obs.port": 1}).start()
    try:
        assert stack.proc is not None
        wait_until(lambda: len(stack.children()) == 2, timeout=30, message="redis + the stack process")
        pids = stack.all_pids()
        stack.proc.kill()
        stack.proc.wait()
        # the children die with their parent (PR_SET_PDEATHSIG), Redis and the stack process alike
        wait_until(lambda: all(_gone(p) for p in pids), timeout=20, message="the keeper's children to end")
    finally:
        stack.stop()
    assert _redis_servers_on(stack.redis_port) == [] and not stack.healthy()
