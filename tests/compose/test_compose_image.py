"""The image built from the Dockerfile: the service CLI without training/ or torch, as a non-root user."""

from __future__ import annotations

import pytest

from tests.compose.conftest import Images
from tests.support.docker_engine import DockerEngine

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(engine: DockerEngine, images: Images, *args: str, entrypoint: str | None = None) -> tuple[int, str]:
    argv = ["run", "--rm", "--network", "none"]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    out = engine.docker(*argv, images.project, *args, timeout=120, check=False)
    return out.returncode, out.stdout + out.stderr


def test_the_service_commands_run_without_training_or_torch(engine: DockerEngine, images: Images) -> None:
    code, out = _run(engine, images, "--help")
    assert code == 0, out
    for command in ("capture", "inference", "state", "gateway", "collect"):
        assert command in out
    code, out = _run(engine, images, "-c", "import importlib.util as u; print(u.find_spec('training'), "
                     "u.find_spec('torch'))", entrypoint="python")
    assert (code, out.strip()) == (0, "None None"), out
    # a training command says what to do instead of a traceback
    code, out = _run(engine, images, "collect", "clip.mp4")
    assert code == 2 and "`training` package is not installed" in out and "Traceback" not in out, out


def test_the_image_runs_as_its_own_user_with_the_model_baked_in(engine: DockerEngine, images: Images) -> None:
    code, out = _run(engine, images, "-c", "import os; from services.common.config.settings import Settings; "
                     "m = Settings().inference.model; print(os.getuid(), m.exists(), m.with_suffix('.json').exists())",
                     entrypoint="python")
    assert (code, out.strip()) == (0, "10001 True True"), out
