"""The whole stack, frames to browser: `owc run` on replays, the overlay in headless Chromium.

Needs the shipped model (models/victory_classifier.onnx) and Debian's Chromium.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from services.common.config.settings import DEFAULT_MODEL
from services.common.contracts.keys import GROUP_INFERENCE, GROUP_STATE, Keys
from services.common.contracts.messages import Event
from tests.support.clips import evening
from tests.support.gateway import SCREENSHOTS, chromium
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not DEFAULT_MODEL.exists():
    pytest.skip("the shipped model models/victory_classifier.onnx is missing", allow_module_level=True)


def _overlay_counts(page: Any) -> dict[str, str]:
    return {
        k: page.locator(f'[data-count="{k}"]').inner_text().strip() for k in ("victories", "defeats", "draws")
    }


def _settled(stack: Stack, prefix: str) -> bool:
    """Capture finished, every frame classified and every label consumed by the state service."""
    if stack.capture_running():
        return False
    client = redis.Redis.from_url(stack.redis_url)
    try:
        keys = Keys(prefix)
        for stream, group in ((keys.frames, GROUP_INFERENCE), (keys.labels, GROUP_STATE)):
            info = {g["name"]: g for g in client.xinfo_groups(stream)}
            g = info.get(group.encode())
            if g is None or int(g.get("lag") or 0) != 0 or int(g["pending"]) != 0:
                return False
        return True
    finally:
        client.close()


def _events(stack: Stack, prefix: str, channel: str = "default") -> list[Event]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return [Event.from_fields(f, i) for i, f in client.xrange(Keys(prefix).events(channel))]
    finally:
        client.close()


def test_demo_clip_counts_exactly_one_victory_in_the_overlay(tmp_path: Path) -> None:
    from training.demo_clip import DEMO_RESULT, ensure_demo_clip

    clip = ensure_demo_clip(tmp_path / "clip")
    prefix = "e2edemo"
    stack = Stack(
        tmp_path / "stack",
        "--source", f"replay:{clip}", "--fps", "4", "--speed", "2",
        settings={"redis.prefix": prefix, "state.reorder_window_ms": 200},
    ).start()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(f"{stack.base_url}/overlay")
            wait_until(lambda: _overlay_counts(page)["victories"] == "1", timeout=60,
                       message=f"the overlay to show one victory (log: {stack.log_path})")
            wait_until(lambda: _settled(stack, prefix), timeout=60, message="the pipeline to settle")
            assert _overlay_counts(page) == {k: str(v) for k, v in DEMO_RESULT.items()}
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "e2e-overlay-demo.png"))
        status = stack.status()
        assert {k: status[k] for k in DEMO_RESULT} == DEMO_RESULT
        detections = [e for e in _events(stack, prefix) if e.type == "detected"]
        assert len(detections) == 1 and detections[0].outcome == "victory"
        assert detections[0].confidence is not None and detections[0].confidence >= 0.9
    finally:
        assert stack.stop() == 0


def test_looping_clip_counts_again_only_after_cooldown_and_none_run(tmp_path: Path) -> None:
    """Clip = 30 s with the banner at 10-15 s. Cooldown 35 s swallows the second loop's
    banner (40-45 s); after it, 20 `none` frames re-arm and the third loop's banner counts."""
    from training.demo_clip import ensure_demo_clip

    clip = ensure_demo_clip(tmp_path / "clip")
    prefix = "e2eloop"
    stack = Stack(
        tmp_path / "stack",
        "--source", f"replay:{clip}", "--fps", "4", "--speed", "4", "--loop",
        settings={"redis.prefix": prefix, "state.cooldown_s": 35, "state.required_none": 20,
                  "state.reorder_window_ms": 200},
    ).start()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(f"{stack.base_url}/overlay")
            wait_until(lambda: _overlay_counts(page)["victories"] == "2", timeout=90,
                       message=f"a second count after the cooldown (log: {stack.log_path})")
        first, second = (e for e in _events(stack, prefix) if e.type == "detected")
        assert first.captured_at is not None and second.captured_at is not None
        gap_s = (second.captured_at - first.captured_at) / 1000
        # the second loop's banner (30 s later) fell inside the cooldown; the third (60 s later) counted
        assert 55 <= gap_s <= 65, gap_s
    finally:
        assert stack.stop() == 0


@pytest.mark.parametrize("mode", ["processes", "one-process"])
def test_faults_across_the_stack_keep_the_counts_exact(tmp_path: Path, mode: str) -> None:
    outcomes = ["victory", "defeat", "draw", "victory", "defeat", "victory"]
    clip, expected, starts = evening(tmp_path / "evening", outcomes)
    prefix = "e2efault"
    stack = Stack(
        tmp_path / "stack",
        *(["--processes"] if mode == "processes" else []),
        "--source", f"replay:{clip}", "--fps", "4", "--speed", "2",
        settings={
            "redis.prefix": prefix,
            "state.cooldown_s": 6,
            "state.required_none": 8,
            "state.reorder_window_ms": 300,
            "run.restart_backoff_max_s": 1,
        },
    ).start()

    def frames_published() -> int:
        """How far the replay is into the clip (its progress ``k``: the frames it has gone through, those left
        out in a cooldown too — services/capture/cooldown.py — so a kill lands where the clip's index says)."""
        client = redis.Redis.from_url(stack.redis_url)
        try:
            return int(client.hget(Keys(prefix).replay("default"), "k") or 0)
        except redis.RedisError:
            return 0
        finally:
            client.close()

    def kill_at(frame_index: int, name: str, sig: int = signal.SIGKILL) -> None:
        wait_until(lambda: frames_published() >= frame_index, timeout=120, message=f"frame {frame_index}")
        victim = wait_until(lambda: stack.children().get(name), timeout=20, message=f"{name} to be running")
        victim.send_signal(sig)
        wait_until(lambda: (c := stack.children().get(name)) is not None and c.pid != victim.pid, timeout=30,
                   message=f"{name} to be restarted")

    try:
        if mode == "processes":
            kill_at(starts[0] + 2, "inference")  # in the middle of the first banner
            kill_at(starts[1] + 4, "state")  # in the middle of a detection streak/cooldown
            kill_at(starts[2] - 4, "gateway")
            kill_at(starts[3] + 1, "redis", signal.SIGTERM)  # Redis restarts from its AOF
            kill_at(starts[4] + 3, "state")
        else:  # a fatal crash of the one process: the keeper starts it again, nothing is lost
            kill_at(starts[0] + 2, "stack")  # in the middle of the first banner
            kill_at(starts[1] + 4, "stack")  # in the middle of a detection streak/cooldown
            kill_at(starts[3] + 1, "redis", signal.SIGTERM)
            kill_at(starts[4] + 3, "stack")
        wait_until(lambda: _settled(stack, prefix), timeout=150, message=f"the pipeline to settle ({stack.log_path})")
        status = wait_until(lambda: stack.healthy() and stack.status(), timeout=30)
        assert {k: status[k] for k in expected} == expected, stack.log()[-4000:]
        detections = [e for e in _events(stack, prefix) if e.type == "detected"]
        assert [e.outcome for e in detections] == outcomes
    finally:
        assert stack.stop() == 0
        shutil.rmtree(clip, ignore_errors=True)
