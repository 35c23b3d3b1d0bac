"""Helpers for the deployment checks: compose / Prometheus / Grafana files, and a live stack to check them against.

YAML is read with the interpreter of Debian's ``docker-compose`` (v1 is a Python
program built on PyYAML), so the project needs no YAML dependency of its own;
the compose file is read *after* ``docker-compose config`` has interpolated and
merged it, i.e. exactly as Docker would run it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import Stack
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
COMPOSE_DEV_FILE = REPO / "compose.dev.yaml"
ENV_EXAMPLE = REPO / ".env.example"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
PROMETHEUS_OWC_RUN = REPO / "deploy" / "prometheus" / "owc-run.yml"  # one-process `owc run`: one target
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "owc.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "owc.yml"
HEALTHCHECK_SCRIPT = REPO / "deploy" / "docker" / "healthcheck.py"

# compose services built from this repository and the `owc` subcommand each one runs
OWC_SERVICES = ("capture", "inference", "state", "actions", "gateway")

# Values Grafana substitutes before a query reaches Prometheus (for the live test and the checks).
GRAFANA_VARIABLES = {
    "$__rate_interval": "15s",
    "$__interval": "5s",
    "$__range": "5m",
    "$channel": ".*",
}

METRIC_RE = re.compile(r"\bowc_[a-z0-9_]+\b")


def docker_compose() -> str | None:
    return shutil.which("docker-compose")


def _yaml_python() -> str:
    compose = docker_compose()
    if compose is None:
        raise RuntimeError("docker-compose (Debian package) is not installed")
    first = Path(compose).read_text(errors="replace").splitlines()[0]
    if not first.startswith("#!"):
        raise RuntimeError(f"{compose} is not a Python script; cannot borrow its YAML parser")
    return first[2:].strip().split()[0]


def load_yaml(text: str) -> Any:
    """Parse YAML with PyYAML from docker-compose's own interpreter; return plain JSON data."""
    out = subprocess.run(
        [_yaml_python(), "-c", "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def filled_env_example(target: Path, values: Mapping[str, str] | None = None) -> Path:
    """``.env.example`` with every required (empty) variable given a test value, written to ``target``."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value == "":
            value = (values or {}).get(key, f"test-{key.lower()}")
        lines.append(f"{key}{sep}{value}" if sep else line)
    target.write_text("\n".join(lines) + "\n")
    return target


def compose_config(
    env_file: Path, files: tuple[Path, ...] = (COMPOSE_FILE,), *extra: str
) -> subprocess.CompletedProcess[str]:
    """``docker-compose --env-file ENV -f … config [extra]`` in the repository (never reads a developer's .env)."""
    compose = docker_compose()
    assert compose is not None
    argv = [compose, "--project-directory", str(REPO), "--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    argv += ["config", *extra]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)


def required_compose_variables(text: str) -> set[str]:
    """Names of the ``${VAR:?message}`` / ``${VAR?message}`` variables in a compose file."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))


# ---- Grafana dashboard -------------------------------------------------------------------


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))  # collapsed rows keep their panels inside


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, PromQL expression)`` for every query target in the dashboard."""
    out: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                out.append((panel.get("title", "?"), expr))
    return out


def template_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """Queries behind the dashboard's template variables (``label_values(…)`` etc.)."""
    out: list[tuple[str, str]] = []
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            out.append((f"variable {var.get('name')}", str(query)))
    return out


def metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))


def substitute_variables(expr: str) -> str:
    """Replace Grafana's variables with the values Grafana would send (longest names first)."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", GRAFANA_VARIABLES[name]).replace(name, GRAFANA_VARIABLES[name])
    return expr


# ---- /metrics --------------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def exported_series(metrics_text: str) -> set[str]:
    """Every series name a /metrics page declares (also for labelled metrics that have no sample yet)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


# ---- Prometheus ------------------------------------------------------------------------


def local_prometheus_config(
    production: dict[str, Any], targets: Mapping[str, list[str]], interval: str = "1s"
) -> dict[str, Any]:
    """The compose Prometheus config with Docker DNS discovery replaced by static local targets.

    Job names, metrics paths and everything else stay as in production, so the dashboard's
    queries (which may select on ``job``) mean the same thing. ``targets`` maps job -> host:port list.
    """
    jobs = []
    for job in production["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            continue
        local = {k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "static_configs"}
        local["static_configs"] = [{"targets": list(targets[name])}]
        local["scrape_interval"] = interval
        local["scrape_timeout"] = interval
        jobs.append(local)
    missing = set(targets) - {j["job_name"] for j in jobs}
    assert not missing, f"jobs not in the production config: {sorted(missing)}"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }


def write_replay_frames(folder: Path, count: int = 6) -> Path:
    """A few small 640x360 JPEGs (plain game-less scenes) for ``owc capture --source replay:``."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(8)
    for i in range(count):
        img = rng.integers(0, 255, size=(360, 640, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"frame_{i:03d}.jpg"), img)
    return folder


# ---- a live stack (`owc run`) ---------------------------------------------------------


def shipped_or_synthetic_model(tmp: Path) -> tuple[Path, str]:
    """The shipped model if it exists, else a generated untrained one with the same I/O contract."""
    shipped = REPO / "models" / "victory_classifier.onnx"
    if shipped.exists():
        return shipped, "shipped"
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("models/victory_classifier.onnx is not there yet and onnx (dev dependency) is missing")
    from tools.synthetic_model import write_synthetic_model

    return write_synthetic_model(tmp / "model" / "synthetic.onnx"), "synthetic"


def start_stack(tmp: Path) -> Stack:
    frames = write_replay_frames(tmp / "frames")
    model, _ = shipped_or_synthetic_model(tmp)
    stack = Stack(
        tmp / "stack",
        # one process per service, like compose: each service's own /metrics port is scraped
        "--processes", "--source", f"replay:{frames}", "--loop", "--fps", "4",
        settings={"inference.model": str(model), "redis.prefix": f"t{os.urandom(5).hex()}",
                  # one action, so `owc run` starts the actions service too (a closed local port:
                  # deliveries fail and retry, nothing leaves the machine)
                  "actions.webhooks": '[{"url": "http://127.0.0.1:9/"}]'},
    )
    return stack.start()


def metrics_urls(stack: Stack) -> dict[str, str]:
    urls = {name: f"http://127.0.0.1:{port}/metrics" for name, port in stack.metrics_ports.items()}
    urls["gateway"] = f"{stack.base_url}/metrics"
    return urls


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def wait_for_traffic(stack: Stack) -> dict[str, str]:
    """Wait until every service answers /metrics and frames flow through inference; return the pages."""
    urls = metrics_urls(stack)
    stack.get_json("/api/v1/channels/default/status")  # a request for the gateway's HTTP metrics

    def pages() -> dict[str, str]:
        texts = {name: fetch(url) for name, url in urls.items()}
        processed = re.search(r"^owc_inference_frames_processed_total ([0-9.e+]+)$", texts["inference"], re.M)
        return texts if processed and float(processed.group(1)) > 0 else {}

    result: dict[str, str] = wait_until(
        pages, timeout=60, interval=0.5, message=f"all /metrics up and frames classified (log: {stack.log_path})"
    )
    return result
