"""A real OBS Studio playing the demo clip -> `owc run` -> the overlay in headless Chromium.

OBS 29 (Debian obs-studio) runs under Xvfb with software GL; its `ffmpeg_source`
loops the demo clip. Killing OBS and starting it again replays the banner from
the beginning: capture must resume and the match must not be counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.config.settings import DEFAULT_MODEL
from tests.support.gateway import SCREENSHOTS, chromium
from tests.support.obs import VIDEO, ObsInstance, requires_obs
from tests.support.ports import free_port
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.obs,
    pytest.mark.browser,
    pytest.mark.slow,
    requires_obs,  # skipped without OBS, except under CI=true
    pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the shipped model is missing"),
]

PASSWORD = "stack-e2e"


@pytest.fixture
def obs(tmp_path: Path) -> Iterator[ObsInstance]:
    from training.demo_clip import write_video

    video = write_video(tmp_path / "media" / "demo.mp4")
    still = tmp_path / "media" / "still.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(still), np.full((1080, 1920, 3), 40, np.uint8))
    instance = ObsInstance(tmp_path / "obs", free_port(), PASSWORD, still, video_path=video)
    instance.start(timeout=90)
    yield instance
    instance.close()


def _victories(page: Any) -> str:
    return str(page.locator('[data-count="victories"]').inner_text().strip())


def test_real_obs_to_overlay_counts_once_across_an_obs_restart(tmp_path: Path, obs: ObsInstance) -> None:
    stack = Stack(
        tmp_path / "stack",
        settings={
            "obs.port": obs.port,
            "obs.password": PASSWORD,
            "obs.source": VIDEO,
            "state.reorder_window_ms": 200,
        },
    ).start()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(f"{stack.base_url}/overlay")
            # the clip shows its banner 10-15 s in; OBS loops it every 30 s
            wait_until(lambda: _victories(page) == "1", timeout=75,
                       message=f"the overlay to count the banner OBS shows (log: {stack.log_path})")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "e2e-overlay-obs.png"))

            obs.kill()
            down = wait_until(lambda: stack.status()["health"]["obs_connected"] is False, timeout=20,
                              message="capture to notice OBS is gone")
            assert down
            obs.start(timeout=90)
            before = _published(stack)
            wait_until(lambda: stack.status()["health"]["obs_connected"] is True, timeout=15,
                       message="capture to reconnect to the restarted OBS")
            # the restarted clip plays its banner again (10-15 s in): still inside the cooldown, where capture
            # takes a frame a second (docs/capture.md, "In a cooldown"): 20 s of frames by their time, not count
            back_at = int(time.time() * 1000)
            wait_until(lambda: _published(stack) > before
                       and (stack.status()["health"]["last_frame_at"] or 0) >= back_at + 20_000, timeout=60,
                       message="20 s of frames from the restarted OBS")
            assert _victories(page) == "1"
        status = stack.status()
        assert (status["victories"], status["defeats"], status["draws"]) == (1, 0, 0)
        assert status["phase"] in ("cooldown", "waiting_for_none")
    finally:
        assert stack.stop() == 0


def _published(stack: Stack) -> int:
    import redis

    from services.common.contracts.keys import Keys

    client = redis.Redis.from_url(stack.redis_url)
    try:
        return int(client.get(Keys("owc").seq("default")) or 0)
    finally:
        client.close()
