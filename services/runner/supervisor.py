"""A small process supervisor for ``owc run``.

Starts child processes in their own sessions (so a terminal's Ctrl+C reaches
only the supervisor, which then stops them in order), prefixes their output
with the child's name, restarts a child that dies with exponential backoff,
and on stop sends SIGTERM, waits, then SIGKILLs stragglers. Children also get
``PR_SET_PDEATHSIG`` so they die with the supervisor even if it is killed -9.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Literal

from services.common.config.redact import mask_credentials  # standard library only: the keeper imports this module

log = logging.getLogger("owc.run")

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Loaded once in the parent: the child, between fork and exec, only makes one
# system call (no imports, no allocations) — preexec_fn runs while the log
# reader threads are alive.
_PRCTL = _load_prctl()


def _die_with_parent(parent: int) -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # the parent died between the fork and the line above (killed -9 during a start or a restart): no
        # signal will come, so the child ends itself rather than run on with nobody to stop it
        if os.getppid() != parent:
            os._exit(1)


RestartPolicy = Literal["always", "on-failure", "never"]


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    restart: RestartPolicy = "always"  # "on-failure": a clean exit (code 0) is final
    stop_last: bool = False  # infrastructure (Redis): stopped after everything else
    umask: int | None = None  # the child's umask (None: inherited)
    pass_fds: tuple[int, ...] = ()  # descriptors the child keeps (the data folder's lock)


@dataclass(frozen=True)
class RestartBackoff:
    """Exponential backoff between restarts; a run of ``stable_after_s`` or more starts it over."""

    initial_s: float = 0.5
    max_s: float = 10.0
    stable_after_s: float = 30.0

    def next(self, previous: float, ran: float) -> float:
        """The wait before the next restart, after one of ``previous`` s and a run of ``ran`` s."""
        if ran >= self.stable_after_s:
            return self.initial_s
        return min(self.max_s, max(self.initial_s, previous * 2))


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float | None = None
    reader: threading.Thread | None = None
    pids: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        specs: list[ChildSpec],
        stop: threading.Event,
        *,
        backoff: RestartBackoff = RestartBackoff(),
        stop_timeout_s: float = 5.0,
        output: IO[str] | None = None,
        on_exit: Callable[[str, int], None] | None = None,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.stop = stop
        self.backoff = backoff
        self.stop_timeout_s = stop_timeout_s
        self.output = output or sys.stderr
        self.on_exit = on_exit
        self._width = max((len(s.name) for s in specs), default=8)
        self._out_lock = threading.Lock()

    # -- output -----------------------------------------------------------
    def _emit(self, name: str, line: str) -> None:
        with self._out_lock:
            # a child's own log lines are masked already; its raw output (a traceback) may not be
            self.output.write(f"{name:<{self._width}} | {mask_credentials(line)}\n")
            self.output.flush()

    def _pump(self, child: _Child, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._emit(child.spec.name, raw.decode("utf-8", "replace").rstrip())
        stream.close()

    # -- lifecycle --------------------------------------------------------
    def start_child(self, child: _Child) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if child.spec.env:
            env.update(child.spec.env)
        child.proc = subprocess.Popen(
            child.spec.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            umask=-1 if child.spec.umask is None else child.spec.umask,
            pass_fds=child.spec.pass_fds,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        child.pids.append(child.proc.pid)
        assert child.proc.stdout is not None
        child.reader = threading.Thread(
            target=self._pump, args=(child, child.proc.stdout), daemon=True, name=f"log-{child.spec.name}"
        )
        child.reader.start()
        log.info("started %s (pid %d)", child.spec.name, child.proc.pid)

    def start(self, names: set[str] | None = None) -> None:
        for child in self.children:
            if names is None or child.spec.name in names:
                self.start_child(child)

    def child(self, name: str) -> _Child:
        return next(c for c in self.children if c.spec.name == name)

    def poll_once(self) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                child.proc = None
                if child.reader:
                    child.reader.join(timeout=1)
                if self.on_exit:
                    self.on_exit(child.spec.name, code)
                if self.stop.is_set():
                    continue
                policy = child.spec.restart
                if policy == "never" or (policy == "on-failure" and code == 0):
                    log.info("%s finished (exit code %d)", child.spec.name, code)
                    continue
                ran = now - child.started_at
                child.backoff = self.backoff.next(child.backoff, ran)
                child.restart_at = now + child.backoff
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                log.warning(
                    "%s %s after %.1fs; restarting in %.1fs", child.spec.name, how, ran, child.backoff
                )
            elif proc is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self.start_child(child)

    def _terminate(self, children: list[_Child]) -> None:
        for child in children:
            assert child.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in children:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", child.spec.name, self.stop_timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()

    def next_restart_in(self, longest_s: float) -> float:
        """Seconds until a child waiting out its backoff is due to start again (``longest_s`` if none is)."""
        due = [c.restart_at for c in self.children if c.proc is None and c.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else longest_s

    def running(self, name: str) -> bool:
        child = self.child(name)
        return child.proc is not None or child.restart_at is not None

    def run(self, poll_interval_s: float = 0.1) -> None:
        """Supervise until ``stop`` is set, then stop every child."""
        try:
            while not self.stop.wait(poll_interval_s):
                self.poll_once()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop every child: the services first, then what they depend on.

        Children marked ``stop_last`` (the embedded Redis) get SIGTERM only
        once the others have exited, so services can ack their last work.
        Each phase waits ``stop_timeout_s`` and then SIGKILLs stragglers.
        """
        self.stop.set()
        alive = [c for c in reversed(self.children) if c.proc is not None and c.proc.poll() is None]
        self._terminate([c for c in alive if not c.spec.stop_last])
        self._terminate([c for c in alive if c.spec.stop_last])
        for child in self.children:
            if child.reader:
                child.reader.join(timeout=2)
            child.proc = None
        log.info("all services stopped")
