"""Capture in its channel's cooldown: a frame a second, the usual rate again before the end or after an undo
(services/capture/cooldown.py), against a real redis-server."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import redis
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.publisher import now_ms
from services.capture.replay import ReplaySource
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Frame
from tests.support.obsws_server import make_test_image
from tests.support.waiting import wait_until


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "clip"
    path.mkdir()
    for i in range(12):
        cv2.imwrite(str(path / f"{i:03d}.jpg"), make_test_image(160, 90))
    return path


def gaps(client: redis.Redis, keys: Keys) -> list[int]:
    frames = [Frame.from_fields(f) for _, f in client.xrange(keys.frames)]
    return [b.captured_at - a.captured_at for a, b in itertools.pairwise(frames)]


def replay(settings: Settings, client: redis.Redis, keys: Keys, folder: Path) -> tuple[ReplaySource, CollectorRegistry]:
    registry = CollectorRegistry()
    return ReplaySource(folder, settings.capture, client, keys, CaptureMetrics(registry)), registry


def test_a_frame_a_second_in_the_cooldown_then_the_usual_rate_a_second_before_it_ends(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=40, capture__loop=True, capture__burst=False)
    # the state service's snapshot: a count put the channel in cooldown for 8 s of frame time
    redis_client.hset(keys.state("default"), mapping={"phase": "cooldown", "cooldown_until": now_ms() + 8000})
    source, registry = replay(settings, redis_client, keys, folder)
    source.run(threading.Event(), max_messages=14)
    # the first frame brings the news; then a frame a second (of replay time) up to a second before the end
    assert gaps(redis_client, keys) == [1000] * 7 + [250] * 6
    assert registry.get_sample_value("owc_capture_frames_skipped_total", {"reason": "cooldown"}) == 21
    # left out, not skipped for a problem: the health record's count of skipped frames says nothing of them
    assert redis_client.hget(keys.health("default", "capture"), "skipped") == b"0"


def test_an_undo_brings_the_usual_rate_back_with_the_next_frame(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=4, capture__loop=True, capture__burst=False)
    redis_client.hset(keys.state("default"), mapping={"phase": "cooldown", "cooldown_until": now_ms() + 60_000})
    source, _ = replay(settings, redis_client, keys, folder)
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop, 8), daemon=True)
    thread.start()
    try:
        wait_until(lambda: source.summary.published >= 3, timeout=10, message="three frames in the cooldown")
        redis_client.hset(keys.state("default"), "phase", "ready")  # `owc undo`: re-armed, the end left as it was
        thread.join(15)
        assert not thread.is_alive()
    finally:
        stop.set()
    spacing = gaps(redis_client, keys)
    assert spacing[:2] == [1000, 1000]
    assert spacing[-3:] == [250, 250, 250]  # at most one more slow frame: the one that brought the news


def test_no_snapshot_or_another_phase_is_the_usual_rate(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, folder: Path
) -> None:
    settings = settings_factory(capture__fps=4, capture__speed=40, capture__loop=True, capture__burst=False)
    source, _ = replay(settings, redis_client, keys, folder)
    source.run(threading.Event(), max_messages=4)
    redis_client.hset(keys.state("default"), mapping={"phase": "waiting_for_none", "cooldown_until": ""})
    source, _ = replay(settings, redis_client, keys, folder)
    source.run(threading.Event(), max_messages=4)
    assert set(gaps(redis_client, keys)[:3] + gaps(redis_client, keys)[4:]) == {250}
