from __future__ import annotations

import functools
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from services.runner.supervisor import ChildSpec, RestartBackoff, Supervisor
from tests.support.waiting import wait_until

PY = sys.executable


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_restarts_a_dead_child_with_backoff_and_prefixes_output() -> None:
    out = io.StringIO()
    stop = threading.Event()
    sup = Supervisor(
        [ChildSpec("flaky", [PY, "-c", "print('hello'); raise SystemExit(3)"])],
        stop,
        backoff=RestartBackoff(initial_s=0.05, max_s=0.2),
        output=out,
    )
    thread = threading.Thread(target=sup.run)
    sup.start()
    thread.start()
    try:
        wait_until(lambda: sup.child("flaky").restarts >= 3, timeout=20, message="three restarts")
    finally:
        stop.set()
        thread.join(10)
    assert len(set(sup.child("flaky").pids)) >= 4
    assert "flaky | hello" in out.getvalue()
    # backoff doubled up to its cap
    assert sup.child("flaky").backoff == pytest.approx(0.2)


def test_shutdown_terminates_then_kills_a_child_that_ignores_sigterm() -> None:
    stop = threading.Event()
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    polite = "import time; time.sleep(60)"
    out = io.StringIO()
    sup = Supervisor(
        [ChildSpec("stubborn", [PY, "-c", stubborn]), ChildSpec("polite", [PY, "-c", polite])],
        stop,
        stop_timeout_s=1.0,
        output=out,
    )
    sup.start()
    wait_until(lambda: "up" in out.getvalue(), timeout=10)
    pids = [c.proc.pid for c in sup.children if c.proc]
    started = time.monotonic()
    sup.shutdown()
    assert time.monotonic() - started < 5
    assert not any(_alive(pid) for pid in pids)


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    script = tmp_path / "sup.py"
    script.write_text(
        "import sys, threading\n"
        "from services.runner.supervisor import ChildSpec, Supervisor\n"
        "stop = threading.Event()\n"
        "sup = Supervisor([ChildSpec('sleeper', [sys.executable, '-c', 'import time; time.sleep(120)'])], stop)\n"
        "sup.start()\n"
        "print(sup.child('sleeper').proc.pid, flush=True)\n"
        "sup.run()\n"
    )
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, cwd=os.getcwd(), text=True)
    assert proc.stdout is not None
    child_pid = int(proc.stdout.readline())
    assert _alive(child_pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not _alive(child_pid), timeout=10, message="orphan child to exit")


def test_infrastructure_stops_after_the_services(tmp_path: Path) -> None:
    stop = threading.Event()
    marker = tmp_path / "order"
    code = (
        "import signal, sys, time, pathlib\n"
        "name = sys.argv[1]\n"
        "def bye(*_):\n"
        "    with open(sys.argv[2], 'a') as f: f.write(name + '\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    out = io.StringIO()
    sup = Supervisor(
        [
            ChildSpec("db", [PY, "-c", code, "db", str(marker)], stop_last=True),
            ChildSpec("svc", [PY, "-c", code, "svc", str(marker)]),
        ],
        stop,
        output=out,
    )
    sup.start()
    wait_until(lambda: out.getvalue().count("up") == 2, timeout=10)
    sup.shutdown()
    assert marker.read_text().split() == ["svc", "db"]


def test_the_keeper_sleeps_until_a_child_ends_then_restarts_it_and_stops_on_a_signal() -> None:
    """The keeper's loop has no timer of its own: a child's end (SIGCHLD) wakes it; without that wake-up a
    dead child would wait for the 60 s idle look, far past this test's timeout."""
    from services.runner.keeper import IDLE_LOOK_S, supervise_until_stopped

    out = io.StringIO()
    stop = threading.Event()
    sup = Supervisor([ChildSpec("brief", [PY, "-c", "import time; time.sleep(0.2)"])], stop,
                     backoff=RestartBackoff(initial_s=0.05, max_s=0.05), output=out)
    assert sup.next_restart_in(IDLE_LOOK_S) == IDLE_LOOK_S

    def stop_after_three_restarts() -> None:
        try:
            wait_until(lambda: sup.child("brief").restarts >= 3, timeout=20, message="three restarts")
        finally:
            stop.set()
            os.kill(os.getpid(), signal.SIGCHLD)  # what wakes the keeper (a stop signal does the same)

    watcher = threading.Thread(target=stop_after_three_restarts)
    sup.start()
    watcher.start()
    started = time.monotonic()
    supervise_until_stopped(sup, stop)  # the main thread, as in the keeper
    watcher.join(5)
    assert sup.child("brief").restarts >= 3, out.getvalue()
    assert time.monotonic() - started < IDLE_LOOK_S
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL and signal.set_wakeup_fd(-1) == -1  # left as found
    assert all(not _alive(pid) for pid in sup.child("brief").pids)


def test_a_child_whose_parent_died_before_it_could_ask_for_the_death_signal_ends_itself() -> None:
    """The window between fork and ``PR_SET_PDEATHSIG``: a parent gone then sends no signal later."""
    from services.runner.supervisor import _die_with_parent

    not_the_parent = os.getpid() + 1_000_000  # what getppid() no longer returns once the parent is gone
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"],
                            preexec_fn=lambda: _die_with_parent(not_the_parent))
    assert proc.wait(timeout=10) == 1
    alive = subprocess.Popen([PY, "-c", "print('ran')"], stdout=subprocess.PIPE,
                             preexec_fn=functools.partial(_die_with_parent, os.getpid()))  # as the supervisor does
    out, _ = alive.communicate(timeout=30)
    assert alive.returncode == 0 and out.strip() == b"ran"
