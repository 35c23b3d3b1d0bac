"""One-process mode: every service of the stack as a thread of one Python process.

Like the monolithic mode of Loki/Mimir (``-target=all``): the same services, the same
contracts — they still talk only through the Redis streams, so more workers elsewhere
(``owc inference`` on another PC) and a standby ``owc state`` keep working. What one
process saves is the interpreters: one runtime, one copy of onnxruntime/FastAPI/redis-py,
one ``/metrics`` (the gateway's: every service's metrics share the process's registry).

A service that fails (an exception, or ``SystemExit`` from a startup check) is restarted
with the supervisor's backoff, as its process would be; a replay that ends is finished.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from services.runner.supervisor import RestartBackoff

if TYPE_CHECKING:
    from services.capture.metrics import CaptureMetrics
    from services.common.config.settings import Loaded, Settings

log = logging.getLogger("owc.run")

RestartPolicy = Literal["always", "on-failure"]


@dataclass
class HostedService:
    name: str
    body: Callable[[threading.Event], object]  # runs until the event is set
    restart: RestartPolicy = "always"  # "on-failure": returning is final (a replay that ended)


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the OS too (``top -H``, ``/proc/<pid>/task/*/comm``), on Linux.

    Threads it starts later (onnxruntime's, the replay's) inherit the name. Best effort: 15 bytes.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class ServiceHost:
    """Runs services as threads; restarts a failed one with exponential backoff."""

    def __init__(
        self,
        services: list[HostedService],
        stop: threading.Event,
        *,
        backoff: RestartBackoff = RestartBackoff(),  # noqa: B008 (frozen: one shared default is fine)
    ) -> None:
        self.services = services
        self.stop = stop
        self.backoff = backoff
        self.threads: dict[str, threading.Thread] = {}
        self._finished: set[str] = set()

    def _keep(self, service: HostedService) -> None:
        name_os_thread(f"owc-{service.name}")
        backoff = 0.0
        while not self.stop.is_set():
            started = time.monotonic()
            failed = True
            try:
                service.body(self.stop)
                failed = False
                how = "returned"
            except SystemExit as exc:  # a startup check's fail(): its line was printed
                how = f"exited with code {exc.code}"
                failed = exc.code not in (0, None)
            except Exception:
                log.exception("%s failed", service.name)
                how = "failed"
            if self.stop.is_set():
                break
            if not failed and service.restart == "on-failure":
                log.info("%s finished", service.name)
                break
            ran = time.monotonic() - started
            backoff = self.backoff.next(backoff, ran)
            log.warning("%s %s after %.1fs; restarting in %.1fs", service.name, how, ran, backoff)
            self.stop.wait(backoff)
        self._finished.add(service.name)

    def start(self) -> None:
        for service in self.services:
            thread = threading.Thread(target=self._keep, args=(service,), name=service.name, daemon=True)
            self.threads[service.name] = thread
            thread.start()
            log.info("started %s (thread)", service.name)

    def running(self, name: str) -> bool:
        thread = self.threads.get(name)
        return thread is not None and thread.is_alive() and name not in self._finished

    def join(self, timeout_s: float = 10.0) -> None:
        """After ``stop``: wait for every service to end (the gateway closes its streams first)."""
        deadline = time.monotonic() + timeout_s
        for name, thread in self.threads.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s did not stop within %.0fs", name, timeout_s)


def stack_services(loaded: Loaded, with_actions: bool) -> list[HostedService]:
    """The stack's services for one process: capture, inference × run.workers, state, gateway, actions."""
    settings = loaded.settings
    from services.actions.cli import serve_actions
    from services.capture.cli import serve_capture
    from services.capture.metrics import CaptureMetrics
    from services.inference.worker import default_worker_name
    from services.state.cli import serve_state

    metrics = _capture_metrics(CaptureMetrics)
    out = [HostedService("state", lambda stop: serve_state(settings, stop))]
    if with_actions:
        out.append(HostedService("actions", lambda stop: serve_actions(settings, stop)))
    out.append(HostedService("gateway", lambda stop: _gateway(settings, loaded, stop)))
    workers = settings.run.workers
    # capture starts once a worker has its model (seconds): frames published before that would be
    # older than inference.max_frame_age_ms when read, and dropped — after a restart, a banner lost
    model_ready = threading.Event()
    for i in range(workers):
        name = "inference" if workers == 1 else f"inference-{i + 1}"
        # one consumer name per thread: the frames' consumer group tells the workers apart
        consumer = settings.inference.worker_name or default_worker_name()
        consumer = consumer if workers == 1 else f"{consumer}-{i + 1}"
        out.append(HostedService(name, _inference(settings, consumer, model_ready)))
    finite = settings.capture.source.startswith("replay:") and not settings.capture.loop

    def capture(stop: threading.Event) -> None:
        if not model_ready.is_set():
            log.info("capture waits for an inference worker's model")
            if not _wait_either(model_ready, stop, MODEL_WAIT_S) and not stop.is_set():
                log.warning("no inference worker ready after %.0f s; capturing anyway", MODEL_WAIT_S)
        if not stop.is_set():
            serve_capture(settings, stop, metrics)

    out.append(HostedService("capture", capture, restart="on-failure" if finite else "always"))
    return out


_CAPTURE_METRICS: list[Any] = []


def _capture_metrics(factory: Callable[[], CaptureMetrics]) -> CaptureMetrics:
    """Once per process, whatever runs the stack how often (a bench runs several): the metrics live
    in the process's registry, which refuses a second copy."""
    if not _CAPTURE_METRICS:
        _CAPTURE_METRICS.append(factory())
    metrics: CaptureMetrics = _CAPTURE_METRICS[0]
    return metrics


MODEL_WAIT_S = 120.0


def _wait_either(event: threading.Event, stop: threading.Event, timeout_s: float) -> bool:
    """Wait for ``event`` (True) until ``stop`` or the timeout (False)."""
    deadline = time.monotonic() + timeout_s
    while not event.wait(0.2):
        if stop.is_set() or time.monotonic() > deadline:
            return False
    return True


def _inference(settings: Settings, consumer: str, ready: threading.Event) -> Callable[[threading.Event], None]:
    from services.inference.cli import load_classifier, serve_inference

    def body(stop: threading.Event) -> None:
        classifier = load_classifier(settings)
        ready.set()
        serve_inference(settings, stop, classifier, consumer)

    return body


def _gateway(settings: Settings, loaded: Loaded, stop: threading.Event) -> None:
    from services.gateway.cli import serve_gateway

    code = serve_gateway(settings, loaded.config_dir, stop)
    if code and not stop.is_set():
        raise RuntimeError(f"the gateway stopped (exit code {code})")
