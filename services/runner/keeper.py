"""The keeper of one-process `owc run`: a parent that imports the standard library only.

`owc run` loads and checks the settings, locks the data folder, then *becomes* this
keeper (``exec``: same pid, the lock's descriptor kept, no settings library left in
memory). The keeper starts the embedded redis-server, then the stack process
(:mod:`services.runner.inproc`: every service as a thread) — or, with ``--processes``,
one process per service — prefixes their output, and restarts any that dies with
backoff: a fatal crash of the stack loses nothing (the state lives in Redis).
Ctrl+C / SIGTERM stops the services first, then Redis. ``owc run`` holds both signals from its
first line (:func:`~services.common.infra.lifecycle.hold_stop_signals`), so one that comes before the
keeper's handlers are in place is taken here, not lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, NoReturn

from services.common.infra.lifecycle import release_stop_signals, stop_on_signals
from services.common.infra.logs import setup_logging
from services.runner.announce import announce_when_up
from services.runner.supervisor import ChildSpec, RestartBackoff, Supervisor

log = logging.getLogger("owc.run")

REDIS_START_S = 20.0


def exec_keeper(specs: list[ChildSpec], backoff_max_s: float, log_level: str,
                announce: dict[str, Any] | None = None) -> NoReturn:
    """Replace this process by the keeper of ``specs`` (inheritable descriptors stay).

    The plan travels on the command line, so it holds no settings: the children's ``OWC_…``
    variables (secrets among them) become the keeper's environment, which its children inherit.
    """
    env = dict(os.environ)
    children = []
    for spec in specs:
        env.update(spec.env or {})
        children.append({k: v for k, v in asdict(spec).items() if k != "env"})
    plan = {"children": children, "backoff_max_s": backoff_max_s, "log_level": log_level, "announce": announce}
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, [sys.executable, "-m", "services.runner.keeper", json.dumps(plan)], env)


def _redis_port(spec: ChildSpec) -> int:
    return int(spec.argv[spec.argv.index("--port") + 1])


def _wait_for_port(port: int, sup: Supervisor, stop: threading.Event) -> bool:
    """True once something accepts connections on 127.0.0.1:port (the embedded Redis)."""
    deadline = time.monotonic() + REDIS_START_S
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            sup.poll_once()
            time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    plan: dict[str, Any] = json.loads(args[0])
    setup_logging(plan.get("log_level", "INFO"))
    specs = [ChildSpec(**{**c, "pass_fds": tuple(c["pass_fds"])}) for c in plan["children"]]
    stop = threading.Event()
    stop_on_signals(stop, log)
    release_stop_signals()  # held since `owc run` began: a signal that came meanwhile is taken now
    if stop.is_set():
        log.info("stopped before anything was started")
        return 0
    sup = Supervisor(specs, stop, backoff=RestartBackoff(max_s=float(plan["backoff_max_s"])))
    redis = next((s for s in specs if s.name == "redis"), None)
    if redis is not None:
        sup.start({"redis"})
        if not _wait_for_port(_redis_port(redis), sup, stop):
            sup.shutdown()
            if stop.is_set():
                return 0
            print(f"owc: the embedded Redis did not start on 127.0.0.1:{_redis_port(redis)}; "
                  "see the 'redis |' lines above", file=sys.stderr)
            return 1
    sup.start({s.name for s in specs if s.name != "redis"})
    if plan.get("announce"):
        threading.Thread(target=announce_when_up, kwargs={**plan["announce"], "stop": stop}, daemon=True).start()
    supervise_until_stopped(sup, stop)
    return 0


IDLE_LOOK_S = 60.0  # with no signal at all, the children are still looked at this often


def supervise_until_stopped(sup: Supervisor, stop: threading.Event) -> None:
    """Look at the children when one ends (SIGCHLD), when a restart is due or a stop signal comes; then stop
    them all (main thread only).

    The keeper sleeps in between: no look a second (a wake-up each), and a child that died is seen at once.
    The signals reach it through ``signal.set_wakeup_fd``: the C-level handler writes to a pipe that
    ``select`` waits on, so a signal that comes just before the wait is not missed either.
    """
    read_fd, write_fd = os.pipe()
    for fd in (read_fd, write_fd):
        os.set_blocking(fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous_chld = signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)  # the pipe is what wakes us
    try:
        sup.poll_once()  # a child that ended before the handler was in
        while not stop.is_set():
            select.select([read_fd], [], [], sup.next_restart_in(IDLE_LOOK_S))
            with contextlib.suppress(BlockingIOError):
                os.read(read_fd, 4096)
            sup.poll_once()
    finally:
        signal.signal(signal.SIGCHLD, previous_chld)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_fd)
        os.close(write_fd)
        sup.shutdown()


if __name__ == "__main__":
    sys.exit(main())
