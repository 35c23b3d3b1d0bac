"""Static checks of the Docker deployment (no Docker engine needed) and of the dashboard against live services.

- compose.yaml (+ the dev overlay) validates with ``docker-compose config -q`` and
  refuses to start without the required secrets that ``.env.example`` lists;
- its topology is what docs/deploy.md promises (ports, volumes, health, scaling);
- every owc service runs a command the ``owc`` CLI accepts, with environment
  variables that are real settings and load without error;
- Prometheus scrapes the ports those settings give (``promtool check config`` too);
- the Grafana provisioning and dashboard are consistent, and every metric the
  dashboard queries is exported by the running services (``owc run`` on free ports).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from services.cli import build_parser
from services.common.config.settings import Settings, load_settings
from services.common.config.settings_rows import describe_fields
from tests.support import deploy
from tests.support.deploy import start_stack, wait_for_traffic
from tests.support.stack import Stack

needs_compose = pytest.mark.skipif(
    deploy.docker_compose() is None, reason="docker-compose is not installed (make test installs it)"
)
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian package prometheus; make test installs it)",
)


# ---- compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deploy.filled_env_example(tmp_path_factory.mktemp("compose") / ".env")


@pytest.fixture(scope="module")
def compose(env_file: Path) -> dict[str, Any]:
    """compose.yaml as Docker would run it: interpolated with .env.example (secrets filled in), merged."""
    out = deploy.compose_config(env_file)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = deploy.load_yaml(out.stdout)
    return data


@needs_compose
@pytest.mark.parametrize(
    "files", [(deploy.COMPOSE_FILE,), (deploy.COMPOSE_FILE, deploy.COMPOSE_DEV_FILE)], ids=["compose", "compose+dev"]
)
def test_compose_file_validates(env_file: Path, files: tuple[Path, ...]) -> None:
    out = deploy.compose_config(env_file, files, "-q")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "" or "WARNING" not in out.stderr, out.stderr


@needs_compose
def test_only_the_obs_password_is_required(tmp_path: Path) -> None:
    required = deploy.required_compose_variables(deploy.COMPOSE_FILE.read_text())
    assert required == {"OBS_PASSWORD"}, "a streamer's `docker compose up` needs only the OBS password"
    listed = {
        line.partition("=")[0]
        for line in deploy.ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert required | {"OWC_ADMIN_TOKEN"} <= listed, "the recommended admin token stays in .env.example"
    # `cp .env.example .env` without filling in the password must stop with a message naming it
    raw = tmp_path / ".env"
    shutil.copy(deploy.ENV_EXAMPLE, raw)
    out = deploy.compose_config(raw, (deploy.COMPOSE_FILE,), "-q")
    assert out.returncode != 0
    assert "set OBS_PASSWORD in .env" in out.stderr, out.stderr
    # and with only the password, the whole file (monitoring profile included) is valid
    raw.write_text(raw.read_text().replace("\nOBS_PASSWORD=\n", "\nOBS_PASSWORD=secret\n"))
    out = deploy.compose_config(raw, (deploy.COMPOSE_FILE,), "-q")
    assert out.returncode == 0, out.stderr


@needs_compose
def test_compose_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", *deploy.OWC_SERVICES, "prometheus", "grafana"}

    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") or ":/data:" in v for v in _volumes(redis)), redis.get("volumes")
    assert "ports" not in redis, "Redis must not be published to the host"
    assert redis["healthcheck"]["test"]

    for name in deploy.OWC_SERVICES:
        svc = services[name]
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert svc["build"]["context"] == str(deploy.REPO)
        assert svc["image"] == services["capture"]["image"], "one image for every owc service"
    inference = services["inference"]
    assert "container_name" not in inference and "ports" not in inference, "inference must stay scalable"

    capture = services["capture"]
    assert capture["environment"]["OWC_OBS__HOST"] == "host.docker.internal"
    assert _extra_hosts(capture).get("host.docker.internal") == "host-gateway"

    # only the gateway, Grafana and Prometheus are published, and only on 127.0.0.1
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"gateway", "grafana", "prometheus"}
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "127.0.0.1:3000:3000/tcp" in [str(p) for p in published["gateway"]]
    assert "127.0.0.1:3001:3000/tcp" in [str(p) for p in published["grafana"]]

    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name
    # monitoring is optional: `docker compose up` starts the counter only
    profiled = {name: svc["profiles"] for name, svc in services.items() if svc.get("profiles")}
    assert profiled == {"prometheus": ["monitoring"], "grafana": ["monitoring"]}
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert services["prometheus"]["healthcheck"]["test"]
    assert set(compose["volumes"]) >= {"redis-data", "prometheus-data", "grafana-data"}


def _volumes(svc: dict[str, Any]) -> list[str]:
    out = []
    for v in svc.get("volumes", []):
        out.append(v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}")
    return out


def _extra_hosts(svc: dict[str, Any]) -> dict[str, str]:
    hosts = svc.get("extra_hosts", {})
    if isinstance(hosts, dict):
        return {k: str(v) for k, v in hosts.items()}
    return dict(str(h).split(":", 1) for h in hosts)


@needs_compose
@pytest.mark.parametrize("name", deploy.OWC_SERVICES)
def test_service_command_is_accepted_by_the_owc_cli(compose: dict[str, Any], name: str) -> None:
    svc = compose["services"][name]
    argv = list(svc.get("command") or [])
    assert argv and argv[0] == name, f"compose service {name!r} must run `owc {name}`, runs {argv}"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse error: the CLI does not accept this command
        pytest.fail(f"`owc {' '.join(argv)}` is refused by the owc CLI (exit {exc.code})")
    assert args.command == name
    assert callable(getattr(args, "handler", None))


def _service_settings(compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var in list(os.environ):
        if var.upper().startswith("OWC_"):
            monkeypatch.delenv(var)
    env = compose["services"][name]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, "" if value is None else str(value))
    return load_settings().settings


@needs_compose
@pytest.mark.parametrize("name", deploy.OWC_SERVICES)
def test_service_environment_is_real_settings(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    known = {env for _, env, _, _ in describe_fields()}
    env = compose["services"][name]["environment"]
    unknown = sorted(k for k in env if k.startswith("OWC_") and k not in known)
    assert not unknown, f"{name}: not settings: {unknown}"
    monkeypatch.chdir(tmp_path)  # no stray owc.toml
    settings = _service_settings(compose, name, monkeypatch)
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.metrics.host == "0.0.0.0", "Prometheus scrapes over the compose network"
    if name == "gateway":
        assert settings.gateway.host == "0.0.0.0"
        assert settings.gateway.admin_token is not None and settings.gateway.admin_token.get_secret_value()


# ---- Prometheus ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    data: dict[str, Any] = deploy.load_yaml(deploy.PROMETHEUS_CONFIG.read_text())
    return data


@needs_compose
def test_prometheus_scrapes_every_service_on_its_configured_port(
    compose: dict[str, Any], prometheus_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    for name in deploy.OWC_SERVICES:
        settings = _service_settings(compose, name, monkeypatch)
        port = settings.gateway.port if name == "gateway" else getattr(settings, name).metrics_port
        assert port != 0, f"{name}: metrics are off"
        job = jobs[name]
        # DNS service discovery on the compose service name: one target per replica, follows --scale
        [sd] = job["dns_sd_configs"]
        assert sd["names"] == [name] and sd["type"] == "A" and sd["port"] == port, (name, sd, port)
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert "static_configs" not in job
    assert "prometheus" in compose["services"]
    mounted = [v for v in _volumes(compose["services"]["prometheus"]) if v.endswith(":/etc/prometheus/prometheus.yml")
               or ":/etc/prometheus/prometheus.yml:" in v]
    assert mounted and mounted[0].startswith(str(deploy.PROMETHEUS_CONFIG)), mounted


def test_the_one_process_config_scrapes_the_gateway_port() -> None:
    """`owc run` (one process): one target, the gateway's port, carries every service's metrics."""
    from services.common.config.sections import GatewaySettings

    config = deploy.load_yaml(deploy.PROMETHEUS_OWC_RUN.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"owc", "prometheus"}
    port = GatewaySettings().port  # type: ignore[call-arg]
    assert jobs["owc"]["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]


@needs_promtool
@needs_compose
def test_promtool_accepts_the_prometheus_configs(prometheus_config: dict[str, Any], tmp_path: Path) -> None:
    local = deploy.local_prometheus_config(
        prometheus_config, {name: [f"127.0.0.1:{9100 + i}"] for i, name in enumerate(deploy.OWC_SERVICES)}
    )
    local_path = tmp_path / "prometheus-local.yml"
    local_path.write_text(json.dumps(local, indent=2))  # JSON is YAML
    for path in (deploy.PROMETHEUS_CONFIG, local_path, deploy.PROMETHEUS_OWC_RUN):
        out = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCESS" in out.stdout + out.stderr


# ---- Grafana ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(deploy.DASHBOARD.read_text())
    return data


@needs_compose
def test_grafana_provisioning_is_consistent(compose: dict[str, Any], dashboard: dict[str, Any]) -> None:
    [ds] = deploy.load_yaml(deploy.DATASOURCES.read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["uid"] and ds["url"] == "http://prometheus:9090"
    # every panel and query uses the provisioned datasource by its fixed uid
    for panel in deploy.iter_panels(dashboard["panels"]):
        if panel.get("type") == "row":
            continue
        for item in [panel, *panel.get("targets", [])]:
            source = item.get("datasource")
            assert source == {"type": "prometheus", "uid": ds["uid"]}, (panel.get("title"), source)
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            assert var["datasource"] == {"type": "prometheus", "uid": ds["uid"]}, var.get("name")
    # the dashboards provider reads the folder compose mounts the dashboards into
    [provider] = deploy.load_yaml(deploy.DASHBOARD_PROVIDERS.read_text())["providers"]
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in _volumes(grafana)}
    assert mounts[str(deploy.GRAFANA_DIR / "dashboards")] == provider["options"]["path"]
    assert mounts[str(deploy.GRAFANA_DIR / "provisioning")] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{deploy.DASHBOARD.name}"
    assert dashboard["uid"] and dashboard["title"]
    panel_ids = [p["id"] for p in deploy.iter_panels(dashboard["panels"])]
    assert len(panel_ids) == len(set(panel_ids)), "panel ids must be unique"


def test_dashboard_queries_use_known_variables_and_owc_metrics(dashboard: dict[str, Any]) -> None:
    queries = deploy.dashboard_queries(dashboard) + deploy.template_queries(dashboard)
    assert len(queries) >= 15
    for title, expr in queries:
        substituted = deploy.substitute_variables(expr)
        assert "$" not in substituted, f"{title}: unknown Grafana variable in {expr!r}"
        # an owc_ metric, or `up` (made by Prometheus itself for every target)
        assert deploy.metric_names(expr) or re.search(r"\bup\{", expr), f"{title}: no owc_ metric in {expr!r}"


def test_dashboard_json_is_the_generator_output() -> None:
    module = _load_script("owc_dashboard", deploy.GRAFANA_DIR / "dashboard.py")
    assert module.render() == deploy.DASHBOARD.read_text(), (
        "deploy/grafana/dashboards/owc.json is stale: .venv/bin/python deploy/grafana/dashboard.py > "
        "deploy/grafana/dashboards/owc.json"
    )


def test_dashboard_is_valid_for_the_grafana_sdk_types(dashboard: dict[str, Any]) -> None:
    """The JSON decodes into grafana-foundation-sdk's typed models and encodes back unchanged (no unknown field)."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import prometheus, stat, timeseries
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

    plugins.register_default_plugins()  # panel options and Prometheus queries decode to their own types
    model = Dashboard.from_json(dashboard)
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == dashboard
    options = {"stat": stat.Options, "timeseries": timeseries.Options}
    rows = []
    for panel in model.panels or []:
        if isinstance(panel, RowPanel):
            rows.append(panel.title)
            continue
        assert isinstance(panel, Panel) and panel.type_val in options, panel
        assert isinstance(panel.options, options[panel.type_val]), (panel.title, type(panel.options))
        assert panel.targets and all(isinstance(t, prometheus.Dataquery) for t in panel.targets), panel.title
    # the streamer's row first, beside the operations rows
    assert rows[0] == "Streamer" and {"Overview", "Capture", "Inference", "Counting (state)", "Gateway"} <= set(rows)


def test_streamer_row_shows_results_detections_and_undos(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    start = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Streamer")
    end = next(i for i, p in enumerate(panels) if i > start and p["type"] == "row")
    exprs = " ".join(t["expr"] for p in panels[start + 1 : end] for t in p["targets"])
    assert 'owc_state_events_total{type="detected"' in exprs  # wins, losses, draws
    assert "by (outcome)" in exprs
    assert 'type="undone"' in exprs  # false-positive undos
    assert "owc_inference_labels_total" in exprs  # detections (banner frames)


# ---- the image's health check --------------------------------------------------------------


def _load_script(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _healthcheck_module() -> ModuleType:
    return _load_script("owc_healthcheck", deploy.HEALTHCHECK_SCRIPT)


def test_healthcheck_finds_listening_ports_in_proc_net_tcp() -> None:
    hc = _healthcheck_module()
    with socket.socket() as listener, socket.socket() as idle:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        idle.bind(("127.0.0.1", 0))  # bound, not listening: must not be reported
        tables = [Path(p).read_text() for p in ("/proc/net/tcp", "/proc/net/tcp6") if Path(p).exists()]
        found = hc.listening(tables)
        assert ("127.0.0.1", listener.getsockname()[1]) in found
        assert all(port != idle.getsockname()[1] for _, port in found)
        # a listening port that does not speak HTTP /metrics is not healthy
        ok, message = hc.check([("127.0.0.1", listener.getsockname()[1])], timeout=0.3)
        assert not ok and "unhealthy" in message
    ok, message = hc.check([])
    assert not ok and "no TCP port" in message


def test_dockerfile_layers_and_runtime() -> None:
    text = (deploy.REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    copies = [ln for ln in lines if ln.startswith("COPY ")]
    order = [ln.split()[1] for ln in copies]
    # dependencies before the code, so code edits reuse the dependency layer
    assert order.index("pyproject.toml") < order.index("services/")
    assert "constraints.txt" in copies[0] and "-c constraints.txt" in text
    assert order.index("models/") < order.index("services/")
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines)
    assert 'ENTRYPOINT ["owc"]' in lines
    # every COPY source exists and is not excluded by .dockerignore (allow-list)
    ignore = (deploy.REPO / ".dockerignore").read_text().splitlines()
    allowed = [ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")]
    for line in copies:
        for src in line.split()[1:-1]:
            assert (deploy.REPO / src).exists(), f"COPY source missing: {src}"
            assert any(src.rstrip("/") == a or a.startswith(src.rstrip("/") + "/") or src.startswith(a + "/")
                       for a in allowed), f".dockerignore excludes {src}"


def test_image_bakes_in_the_shipped_model() -> None:
    model = deploy.REPO / "models" / "victory_classifier.onnx"
    if not model.exists():
        pytest.skip("models/victory_classifier.onnx is not trained yet: `docker compose build` needs it")
    meta = model.with_suffix(".json")
    assert meta.exists(), "the model's metadata must sit beside it"
    json.loads(meta.read_text())
    allowed = {ln[1:] for ln in (deploy.REPO / ".dockerignore").read_text().splitlines() if ln.startswith("!")}
    assert {"models/victory_classifier.onnx", "models/victory_classifier.json"} <= allowed


# ---- live: the dashboard's metrics exist in the services' /metrics --------------------------


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("deploy-stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.slow
def test_every_dashboard_metric_is_exported_by_the_running_services(
    live_stack: Stack, dashboard: dict[str, Any]
) -> None:
    pages = wait_for_traffic(live_stack)
    exported: dict[str, set[str]] = {name: deploy.exported_series(text) for name, text in pages.items()}
    everything = set().union(*exported.values())
    queries = deploy.dashboard_queries(dashboard) + deploy.template_queries(dashboard)
    missing = {
        f"{title}: {name}" for title, expr in queries for name in deploy.metric_names(expr) if name not in everything
    }
    assert not missing, "dashboard queries metrics no service exports:\n" + "\n".join(sorted(missing))
    # and each service's metrics carry its own prefix (the dashboard relies on it)
    for name, series in exported.items():
        owc = {s for s in series if s.startswith("owc_")}
        assert owc and all(s.startswith(f"owc_{name}_") for s in owc), (name, sorted(owc)[:5])


@pytest.mark.slow
def test_image_healthcheck_is_healthy_against_every_running_service(live_stack: Stack) -> None:
    wait_for_traffic(live_stack)
    ports = [*live_stack.metrics_ports.values(), live_stack.gateway_port]
    # what the no-argument mode (inside a container) would find and ask
    hc = _healthcheck_module()
    found = hc.listening([Path(p).read_text() for p in ("/proc/net/tcp", "/proc/net/tcp6") if Path(p).exists()])
    for port in ports:
        assert ("127.0.0.1", port) in found
        assert hc.check([("127.0.0.1", port)]) == (True, f"healthy: http://127.0.0.1:{port}/metrics answered 200")
    for port in ports:
        out = subprocess.run(
            [sys.executable, str(deploy.HEALTHCHECK_SCRIPT), str(port)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "healthy" in out.stdout
