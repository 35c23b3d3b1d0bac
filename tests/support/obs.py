"""The real-OBS harness for e2e tests (implemented in ``tools.headless_obs``,
because ``owc bench capture`` starts the same headless OBS).

``replay_obs`` is a module-scoped fixture (re-exported by ``tests/e2e/conftest.py``):
one OBS per test module whose replay buffer is running and saves
``Replay_*.mkv`` clips (x264, 640×360 output of the 1920×1080 canvas, the last
:data:`REPLAY_SECONDS` seconds) into ``obs.replay_buffer_dir``; password
:data:`REPLAY_PASSWORD`. ``start_replay_obs()`` builds the same with your own
media (e.g. a ``video_path`` playing the demo clip).

``requires_obs`` skips a test module when OBS or Xvfb is missing, except under
``CI=true`` where the OBS tests must run (the fixture then fails with why).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.headless_obs import (
    IMAGE,
    MISSING_REASON,
    SCENE,
    VIDEO,
    ObsInstance,
    ObsStartError,
    obs_available,
)

__all__ = [
    "IMAGE",
    "IN_CI",
    "MISSING_REASON",
    "REPLAY_PASSWORD",
    "REPLAY_SECONDS",
    "SCENE",
    "VIDEO",
    "ObsInstance",
    "ObsStartError",
    "obs_available",
    "replay_obs",
    "requires_obs",
    "start_replay_obs",
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
requires_obs = pytest.mark.skipif(not obs_available() and not IN_CI, reason=MISSING_REASON)

REPLAY_PASSWORD = "replay-e2e"
REPLAY_SECONDS = 10


def still_image(path: Path, gray: int = 60) -> Path:
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((1080, 1920, 3), gray, np.uint8))
    return path


def start_replay_obs(tmpdir: Path, port: int, media_path: Path | None = None, video_path: Path | None = None,
                     password: str = REPLAY_PASSWORD, seconds: int = REPLAY_SECONDS,
                     websocket_debug: bool = False) -> ObsInstance:
    """A started OBS with its replay buffer running, saving into ``tmpdir / "replays"``."""
    instance = ObsInstance(
        tmpdir / "obs", port, password, media_path or still_image(tmpdir / "media" / "still.png"),
        video_path=video_path, replay_buffer_dir=tmpdir / "replays", replay_buffer_seconds=seconds,
        output_size=(640, 360),  # the clip; screenshots still render the 1920×1080 canvas
        websocket_debug=websocket_debug,
    )
    try:
        instance.start(timeout=90)
        instance.start_replay_buffer()
    except BaseException:
        instance.close()
        raise
    return instance


@pytest.fixture(scope="module")
def replay_obs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObsInstance]:
    from tests.support.ports import free_port

    instance = start_replay_obs(tmp_path_factory.mktemp("replay-obs"), free_port())
    yield instance
    instance.close()
