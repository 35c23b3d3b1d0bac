"""``docker compose up`` for real: the image built from the Dockerfile, the stack from compose.yaml.

One stack for the module, checked in order, through the published gateway port
(and Prometheus's): the demo clip's victory is counted exactly once; three
inference replicas are healthy and scraped; a killed state container is brought
back by its restart policy with the counts unchanged; ``down`` then ``up`` keeps
the counts (Redis AOF in the redis-data volume). The engine blocks egress while
anything runs (tests/support/docker_engine.py).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.contracts.keys import GROUP_INFERENCE, GROUP_STATE, Keys
from tests.compose.conftest import Figures, Images
from tests.support.compose_project import ComposeProject, elapsed
from tests.support.docker_engine import DockerEngine
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXPECTED = {"victories": 1, "defeats": 0, "draws": 0}  # training/demo_clip.py: DEMO_RESULT
OWC = ["capture", "inference", "state", "gateway"]
KEYS = Keys("owc")  # compose.yaml's default prefix


@pytest.fixture(scope="module")
def clip() -> Path:
    from training.demo_clip import DEMO_RESULT, ensure_demo_clip

    assert DEMO_RESULT == EXPECTED
    return ensure_demo_clip()


@pytest.fixture(scope="module")
def project(
    engine: DockerEngine, images: Images, clip: Path, tmp_path_factory: pytest.TempPathFactory, figures: Figures
) -> Iterator[ComposeProject]:
    proj = ComposeProject(engine, tmp_path_factory.mktemp("compose"), {"OWC_TEST_CLIP": str(clip)})
    proj.compose("down", "--volumes", "--remove-orphans", timeout=120, check=False)  # an earlier run's
    services = [s for s in proj.services() if s != "grafana"]  # no local Grafana image (see the override)
    proj.started_at = time.monotonic()
    try:
        proj.compose("up", "-d", "--no-build", *services, timeout=300)
        figures["up_command_s"] = elapsed(proj.started_at)
        yield proj
    finally:
        logs = proj.compose("logs", "--no-color", "--tail", "200", timeout=120, check=False).stdout
        (proj.workdir / "compose.log").write_text(logs)
        proj.compose("down", "--volumes", "--remove-orphans", timeout=180, check=False)


def test_nothing_can_leave_the_machine(engine: DockerEngine, project: ComposeProject) -> None:
    assert engine.egress_blocked(), "the egress drop rule must be in place while containers run"
    # Redis and the services' metrics stay on the compose network: only the gateway and Prometheus are published
    published = set()
    for service in project.services():
        for cid in project.container_ids(service):
            ports = project.inspect(cid)["NetworkSettings"]["Ports"] or {}
            for bindings in ports.values():
                for b in bindings or []:
                    assert b["HostIp"] == "127.0.0.1", (service, b)
                    published.add(service)
    assert published == {"gateway", "prometheus"}


def test_the_demo_victory_is_counted_exactly_once(project: ComposeProject, figures: Figures) -> None:
    t0 = project.started_at
    wait_until(lambda: project.counts()["victories"] >= 1, timeout=180, interval=0.2,
               message=f"the victory to be counted (logs: {project.workdir}/compose.log)")
    figures["up_to_counted_s"] = elapsed(t0)
    figures["memory_per_container"] = project.memory()  # capture may still be replaying
    wait_until(lambda: project.all_healthy([*OWC[1:], "redis", "prometheus"]), timeout=120, interval=0.5,
               message="every service healthy")
    figures["up_to_all_healthy_s"] = elapsed(t0)

    # the replay ends (capture exits 0) and every frame and label is consumed and acknowledged
    [capture] = project.container_ids("capture")
    wait_until(lambda: project.inspect(capture)["State"]["Status"] == "exited", timeout=120, interval=0.5,
               message="the replay to finish")
    assert project.inspect(capture)["State"]["ExitCode"] == 0
    wait_until(lambda: project.group_idle(KEYS.frames, GROUP_INFERENCE)
               and project.group_idle(KEYS.labels, GROUP_STATE),
               timeout=60, interval=0.5, message="inference and state to acknowledge everything")
    assert project.counts() == EXPECTED
    status = project.status()
    assert status["last_outcome"] == "victory" and status["health"]["model"]


def test_three_inference_workers_are_healthy_and_scraped(project: ComposeProject, figures: Figures) -> None:
    t0 = time.monotonic()
    services = [s for s in project.services() if s not in ("grafana", "capture")]
    project.compose("up", "-d", "--no-build", "--scale", "inference=3", *services, timeout=300)
    figures["scale_to_3_command_s"] = elapsed(t0)
    def three() -> list[str]:
        ids = project.container_ids("inference")
        return ids if len(ids) == 3 else []

    workers = wait_until(three, timeout=60, message="three inference containers")
    wait_until(lambda: all(project.health(c) == "healthy" for c in workers), timeout=120, interval=0.5,
               message="three healthy inference workers")
    figures["scale_to_3_healthy_s"] = elapsed(t0)
    addresses = {
        net["IPAddress"] for c in workers for net in project.inspect(c)["NetworkSettings"]["Networks"].values()
    }

    def scraped() -> bool:
        targets = project.prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]
        up = {t["labels"]["instance"].split(":")[0] for t in targets
              if t["labels"]["job"] == "inference" and t["health"] == "up"}
        series = project.prometheus("/api/v1/query?query=count(owc_inference_frames_processed_total)")
        result = series["data"]["result"]
        return up == addresses and bool(result) and result[0]["value"][1] == "3"

    wait_until(scraped, timeout=90, interval=1, message="Prometheus to discover and scrape the three workers")
    figures["scale_to_3_scraped_s"] = elapsed(t0)
    assert project.counts() == EXPECTED


def test_a_killed_state_container_is_restarted_and_counts_are_unchanged(project: ComposeProject) -> None:
    [state] = project.container_ids("state")
    before = project.inspect(state)
    # A crash: SIGKILL to the container's process from outside, as the kernel's OOM killer would.
    # (`docker kill` counts as a manual stop, which `restart: unless-stopped` rightly leaves stopped.)
    os.kill(int(before["State"]["Pid"]), signal.SIGKILL)
    def restarted() -> bool:
        info = project.inspect(state)
        st = info["State"]
        return bool(info["RestartCount"] > before["RestartCount"] and st["Running"] and not st["Restarting"]
                    and st["StartedAt"] != before["State"]["StartedAt"])

    wait_until(restarted, timeout=60, interval=0.2, message="the restart policy to bring the state container back")
    wait_until(lambda: project.health(state) == "healthy", timeout=90, interval=0.5, message="state healthy again")
    wait_until(lambda: project.status()["health"]["state_alive"], timeout=60, interval=0.5,
               message="the gateway to see the state service alive")
    assert project.counts() == EXPECTED


def test_counts_survive_down_and_up(project: ComposeProject, figures: Figures) -> None:
    before = project.status()
    project.compose("down", timeout=180)  # containers and network gone, volumes kept
    assert not project.compose("ps", "-q", timeout=60).stdout.strip()
    t0 = time.monotonic()
    services = [s for s in project.services() if s not in ("grafana", "capture")]  # capture would replay again
    project.compose("up", "-d", "--no-build", *services, timeout=300)
    wait_until(lambda: project.counts() == EXPECTED, timeout=120, interval=0.5,
               message="the gateway to serve the counts kept in the redis-data volume")
    figures["up_again_to_serving_s"] = elapsed(t0)
    after = project.status()
    assert after["last_event_id"] == before["last_event_id"]
    assert after["session"]["id"] == before["session"]["id"]
