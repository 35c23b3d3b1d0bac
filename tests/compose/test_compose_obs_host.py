"""The two documented ways to reach OBS, with compose.yaml unchanged (no override file).

- A streamer's PC (Docker Desktop on Windows, or Docker on Linux): OBS runs on the
  host and capture reaches it as ``host.docker.internal`` (compose.yaml's default,
  mapped to ``host-gateway``). OBS here is the project's protocol-faithful
  obs-websocket 5 server, listening on the host's address on the Docker bridge.
- A second PC runs the counter: ``OBS_HOST`` is the streaming PC's address, and the
  gateway is published on this PC's LAN address (``OWC_HTTP_BIND``) with the admin
  token required for changes. The Docker bridge address stands in for the LAN one,
  so nothing is published beyond this machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compose.conftest import Figures, Images
from tests.support.compose_project import ComposeProject
from tests.support.docker_engine import DockerEngine, bridge_gateway
from tests.support.obsws_server import ObsWsServer
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SERVICES = ["redis", "capture", "inference", "state", "gateway"]  # `docker compose up` without the profile
TOKEN = "a-long-random-admin-token-for-the-test"


@pytest.fixture(scope="module")
def host_address(engine: DockerEngine) -> str:
    return bridge_gateway(engine)  # where host-gateway points: the host, as containers see it


@pytest.fixture(scope="module")
def obs(host_address: str) -> Iterator[ObsWsServer]:
    server = ObsWsServer(password="obs-password-from-tools-menu", host=host_address, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def stack(
    engine: DockerEngine, images: Images, obs: ObsWsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeProject]:
    assert obs.password
    proj = ComposeProject(
        engine, tmp_path_factory.mktemp("compose-obs"),
        {"OBS_PASSWORD": obs.password, "OBS_PORT": str(obs.port), "OWC_ADMIN_TOKEN": TOKEN},
        name="owcctobs", overrides=(),
    )
    proj.compose("down", "--volumes", "--remove-orphans", timeout=120, check=False)
    try:
        yield proj
    finally:
        logs = proj.compose("logs", "--no-color", "--tail", "200", timeout=120, check=False).stdout
        (proj.workdir / "compose.log").write_text(logs)
        proj.compose("down", "--volumes", "--remove-orphans", timeout=180, check=False)


def _classifying(proj: ComposeProject) -> bool:
    health = proj.status()["health"]
    return bool(health["obs_connected"]) and health["last_label"] is not None


def test_obs_on_the_host_is_reached_as_host_docker_internal(
    stack: ComposeProject, obs: ObsWsServer, figures: Figures
) -> None:
    stack.compose("up", "-d", "--no-build", *SERVICES, timeout=300)
    config = stack.compose("config", timeout=60).stdout
    assert "OWC_OBS__HOST: host.docker.internal" in config
    wait_until(lambda: obs.session_count >= 1 and obs.request_count("GetSourceScreenshot") > 0, timeout=120,
               interval=0.5, message=f"capture to log in to OBS on the host (logs: {stack.workdir}/compose.log)")
    wait_until(lambda: _classifying(stack), timeout=120, interval=0.5,
               message="OBS connected and its screenshots classified, as the gateway reports")
    assert obs.auth_failures == 0
    figures["memory_per_container_with_obs"] = stack.memory()  # capture at the default 4 frames/s


def test_a_second_pc_with_obs_host_and_the_gateway_on_the_lan_with_a_token(
    stack: ComposeProject, obs: ObsWsServer, host_address: str
) -> None:
    before = obs.identify_attempts
    stack.set_env({"OBS_PASSWORD": obs.password or "", "OBS_PORT": str(obs.port), "OWC_ADMIN_TOKEN": TOKEN,
                   "OBS_HOST": host_address, "OWC_HTTP_BIND": host_address})
    stack.compose("up", "-d", "--no-build", *SERVICES, timeout=300)  # recreates capture and gateway
    [gateway] = stack.container_ids("gateway")
    bindings = stack.inspect(gateway)["NetworkSettings"]["Ports"]["3000/tcp"]
    assert [b["HostIp"] for b in bindings] == [host_address]
    [capture] = stack.container_ids("capture")
    assert f"OWC_OBS__HOST={host_address}" in stack.inspect(capture)["Config"]["Env"]
    wait_until(lambda: obs.identify_attempts > before, timeout=120, interval=0.5,
               message="the recreated capture to log in to OBS at its address")
    wait_until(lambda: _classifying(stack), timeout=120, interval=0.5, message="the overlay status over the LAN")
    # reading needs nothing; a change needs the token
    path = "/api/v1/channels/default/adjust"
    code, body = stack.post_json(path, {"outcome": "defeat", "delta": 1})
    assert code == 401, body
    code, body = stack.post_json(path, {"outcome": "defeat", "delta": 1}, token=TOKEN)
    assert code == 200, body
    assert body["status"]["defeats"] == 1
    assert stack.counts()["defeats"] == 1
