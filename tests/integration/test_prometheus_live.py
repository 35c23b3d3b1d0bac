"""A real Prometheus (Debian's) scrapes a running ``owc run`` and answers every dashboard query.

The scrape config is compose's deploy/prometheus/prometheus.yml with the Docker DNS
discovery swapped for the local free ports (same job names and paths), at 1 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import deploy
from tests.support.deploy import start_stack, wait_for_traffic
from tests.support.ports import free_port
from tests.support.stack import Stack
from tests.support.waiting import wait_until

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="prometheus is not installed (Debian package; make test installs it)"
    ),
    pytest.mark.skipif(deploy.docker_compose() is None, reason="docker-compose (for its YAML parser) is not installed"),
]


class Prometheus:
    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        assert PROMETHEUS is not None
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        wait_until(self.ready, timeout=30, interval=0.2, message=f"prometheus ready (log: {self.log_path})")
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422/503 carry {"status": "error", "error": …}
            return json.loads(exc.read() or b"{}") | {"http_status": exc.code}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("prom-stack"))
    try:
        wait_for_traffic(s)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    production = deploy.load_yaml(deploy.PROMETHEUS_CONFIG.read_text())
    targets = {name: [f"127.0.0.1:{port}"] for name, port in stack.metrics_ports.items()}
    targets["gateway"] = [f"127.0.0.1:{stack.gateway_port}"]
    workdir = tmp_path_factory.mktemp("prometheus")
    prom = Prometheus(workdir, {})
    targets["prometheus"] = [f"127.0.0.1:{prom.port}"]
    config = deploy.local_prometheus_config(production, targets, interval="1s")
    prom.config_path.write_text(json.dumps(config, indent=2))
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()


def test_prometheus_scrapes_every_service_and_answers_every_dashboard_query(
    prometheus: Prometheus, stack: Stack
) -> None:
    started = time.monotonic()

    def all_up() -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = prometheus.api("targets", state="active")["data"]["activeTargets"]
        jobs = {t["labels"]["job"] for t in active}
        healthy = len(active) == len(deploy.OWC_SERVICES) + 1 and jobs == {*deploy.OWC_SERVICES, "prometheus"}
        return active if healthy and all(t["health"] == "up" for t in active) else []

    wait_until(all_up, timeout=30, interval=0.25, message="every service and Prometheus up")

    dashboard = json.loads(deploy.DASHBOARD.read_text())
    queries = [
        (panel["title"], tgt)
        for panel in deploy.iter_panels(dashboard["panels"])
        for tgt in panel.get("targets", [])
    ]
    assert len(queries) == len(deploy.dashboard_queries(dashboard))

    def run(tgt: dict[str, Any]) -> Any:
        expr = deploy.substitute_variables(tgt["expr"])
        now = time.time()
        if tgt.get("instant"):
            return prometheus.api("query", query=expr, time=f"{now:.3f}")
        return prometheus.api("query_range", query=expr, start=f"{now - 60:.3f}", end=f"{now:.3f}", step="1")

    # The panels at the heart of the pipeline must show data, not just no error: wait for
    # enough scrapes (two inside the rate window) that each of them has a series.
    must_have_data = ("Frames captured /s", "Frames classified /s", "Targets up", "Inference seconds per stage",
                      "Labels by class", "Consumer lag", "OBS round trip", "HTTP requests", "State writer", "Phase")
    core = [(title, tgt) for title, tgt in queries if title in must_have_data]
    assert {title for title, _ in core} == set(must_have_data)

    def core_has_data() -> bool:
        by_title: dict[str, bool] = {}
        for title, tgt in core:
            answer = run(tgt)
            if answer.get("status") != "success":
                raise AssertionError(f"{title}: {tgt['expr']}: {answer}")
            result = answer["data"]["result"]
            by_title[title] = by_title.get(title, False) or bool(result)
        return all(by_title.values())

    wait_until(core_has_data, timeout=30, interval=0.5, message="data in the core panels")

    # every query of the dashboard, once, as Grafana sends it (range, or instant for instant targets)
    failures = []
    for title, tgt in queries:
        answer = run(tgt)
        if answer.get("status") != "success" or answer.get("error") or answer.get("warnings"):
            failures.append(f"{title}: {tgt['expr']}: {answer}")
    assert not failures, "\n".join(failures)

    # the template variable: label_values(owc_state_phase, channel)
    channels = prometheus.api("label/channel/values", **{"match[]": "owc_state_phase"})
    assert channels["status"] == "success" and "default" in channels["data"], channels
    assert time.monotonic() - started < 60
