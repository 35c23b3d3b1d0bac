"""One-process mode's service host: a failed service is restarted with backoff, a finished replay is not."""

from __future__ import annotations

import threading

import pytest

from services.runner.host import HostedService, ServiceHost
from services.runner.supervisor import RestartBackoff
from tests.support.waiting import wait_until


def test_a_failing_service_is_restarted_with_backoff_and_the_others_keep_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    runs: list[str] = []

    def flaky(stop: threading.Event) -> None:
        runs.append("flaky")
        if len(runs) < 3:
            raise RuntimeError("boom")
        stop.wait()

    def exits(stop: threading.Event) -> None:  # a startup check's fail()
        raise SystemExit(2)

    steady = threading.Event()
    host = ServiceHost([HostedService("flaky", flaky), HostedService("exits", exits),
                        HostedService("steady", lambda s: (steady.set(), s.wait()))],
                       stop, backoff=RestartBackoff(initial_s=0.01, max_s=0.05))
    caplog.set_level("INFO", logger="owc.run")
    host.start()
    try:
        wait_until(lambda: len(runs) >= 3, timeout=5, message="flaky restarted twice")
        assert steady.is_set() and host.running("steady") and host.running("flaky")
        assert any("flaky failed after" in r.getMessage() and "restarting in" in r.getMessage()
                   for r in caplog.records)
        wait_until(lambda: any("exits exited with code 2" in r.getMessage() for r in caplog.records), timeout=5)
    finally:
        stop.set()
        host.join(5)
    assert not any(t.is_alive() for t in host.threads.values())


def test_a_service_that_ends_on_its_own_is_finished_not_restarted() -> None:
    stop = threading.Event()
    runs: list[int] = []
    host = ServiceHost([HostedService("capture", lambda s: runs.append(1), restart="on-failure")], stop,
                       backoff=RestartBackoff(initial_s=0.01))
    host.start()
    try:
        wait_until(lambda: not host.running("capture"), timeout=5, message="capture finished")
        assert runs == [1]
    finally:
        stop.set()
        host.join(5)
