"""The compose tier: a private dockerd, local base images, the real Dockerfile and compose.yaml.

Skipped with the reason when this machine cannot run it (not root, no engine);
under ``CI=true`` that is a failure instead. ``make test-compose`` runs this tier alone.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.support import deploy, docker_engine
from tests.support.docker_engine import DockerEngine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPORT = deploy.REPO / "artifacts" / "compose-tier.json"  # figures for docs/deploy.md (git-ignored)


def _cannot_run(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"compose tier must run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"compose tier skipped: {reason}")


@dataclass
class Figures:
    """Measured while the tier runs; written to artifacts/compose-tier.json at the end."""

    values: dict[str, Any] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def write(self) -> None:
        if not self.values:  # skipped: keep the last run's figures
            return
        self.values["tier_seconds"] = round(time.monotonic() - self.t0, 1)
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="package")
def figures() -> Iterator[Figures]:
    figs = Figures()
    yield figs
    figs.write()


@pytest.fixture(scope="package")
def engine(figures: Figures) -> Iterator[DockerEngine]:
    reason = docker_engine.unavailable_reason()
    if reason:
        _cannot_run(reason)
    eng = DockerEngine(docker_engine.cache_dir())
    stop_once = eng.stop
    atexit.register(stop_once)  # a hard exit of pytest still stops dockerd and restores the host

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the fixtures' teardown

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        t0 = time.monotonic()
        try:
            eng.start()
        except Exception as exc:
            _cannot_run(f"the Docker engine did not start ({exc}); dockerd log:\n{eng.log_tail(2000)}")
        figures["engine_start_s"] = round(time.monotonic() - t0, 1)
        yield eng
    finally:
        try:
            eng.stop()
            atexit.unregister(stop_once)
            if eng.egress_dropped is not None:
                figures["egress_packets_dropped"] = eng.egress_dropped
        finally:
            signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class Images:
    project: str  # the tag compose.yaml runs (its `image:`)


def _compose_images() -> dict[str, str]:
    """service -> image as compose.yaml gives them (interpolated with .env.example's defaults)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = deploy.filled_env_example(Path(tmp) / ".env")
        out = deploy.compose_config(env)
        assert out.returncode == 0, out.stderr
        config = deploy.load_yaml(out.stdout)
    return {name: svc["image"] for name, svc in config["services"].items() if "image" in svc}


@pytest.fixture(scope="package")
def images(engine: DockerEngine, figures: Figures) -> Images:
    """Base images from Debian packages (cached), wheels from the host, then the real Dockerfile."""
    cache = docker_engine.cache_dir()
    compose_images = _compose_images()
    [python_tag] = list(docker_engine.iter_dockerfile_froms())
    t0 = time.monotonic()
    made = docker_engine.ensure_base_images(
        engine,
        docker_engine.base_images(python_tag, compose_images["redis"], compose_images["prometheus"]),
        cache,
    )
    figures["base_images_made"] = made
    figures["base_images_s"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    version = docker_engine.image_python_version(engine, python_tag)
    house = docker_engine.ensure_wheelhouse(cache, version)
    figures["wheelhouse_s"] = round(time.monotonic() - t0, 1)

    project_tag = compose_images["capture"]
    with docker_engine.WheelServer(house, docker_engine.bridge_gateway(engine)) as server:
        build = docker_engine.build_image(engine, project_tag, server.url)
    figures["build_s"] = round(build.seconds, 1)
    figures["build_dependency_layer_cached"] = build.dependencies_cached
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", project_tag).stdout.strip())
    figures["image_size_mb"] = round(size / 1e6)
    base = int(engine.docker("image", "inspect", "--format", "{{.Size}}", python_tag).stdout.strip())
    figures["base_python_image_size_mb"] = round(base / 1e6)
    figures["image_above_base_mb"] = round((size - base) / 1e6)  # dependencies, model, code
    return Images(project_tag)
