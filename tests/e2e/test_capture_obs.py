"""Capture against a real OBS Studio (Debian obs-studio under Xvfb, software GL)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.obs_source import Backoffs, ObsSource
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Frame
from tests.support.obs import IMAGE, SCENE, VIDEO, ObsInstance, requires_obs
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.obs,
    pytest.mark.slow,
    requires_obs,  # skipped without OBS, except under CI=true
]

PASSWORD = "e2e-pass"
RED = (0, 0, 230)  # BGR
BLUE = (230, 0, 0)


def solid(path: Path, bgr: tuple[int, int, int], size: tuple[int, int] = (1920, 1080)) -> Path:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = bgr
    cv2.putText(image, path.stem, (100, 500), cv2.FONT_HERSHEY_SIMPLEX, 8, (255, 255, 255), 12)
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 360))
    for i in range(20):
        frame = np.full((360, 640, 3), (0, 180, 0), np.uint8)  # green
        cv2.putText(frame, str(i), (50, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 6)
        writer.write(frame)
    writer.release()
    return {"red": solid(root / "red.png", RED), "blue": solid(root / "blue.png", BLUE), "video": video}


@pytest.fixture(scope="module")
def obs(tmp_path_factory: pytest.TempPathFactory, media: dict[str, Path]) -> Iterator[ObsInstance]:
    instance = ObsInstance(
        tmp_path_factory.mktemp("obs"), free_port(), PASSWORD, media["red"], video_path=media["video"]
    )
    instance.start(timeout=90)
    yield instance
    instance.close()


def mean_bgr(frame: Frame) -> tuple[float, float, float]:
    image = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = image.reshape(-1, 3).mean(axis=0)
    return float(b), float(g), float(r)


class Capture:
    def __init__(self, settings: Settings, client: redis.Redis, keys: Keys) -> None:
        self.registry = CollectorRegistry()
        self.source = ObsSource(
            settings.obs, settings.capture, client, keys, CaptureMetrics(self.registry), backoffs=Backoffs()
        )
        self.client = client
        self.keys = keys
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.source.run, args=(self.stop,), daemon=True)
        self.thread.start()

    @property
    def published(self) -> int:
        return self.source.publisher.published

    def last_frame(self) -> Frame:
        entries = self.client.xrevrange(self.keys.frames, count=1)
        return Frame.from_fields(entries[0][1])

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(15)


@pytest.fixture
def capture(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, obs: ObsInstance
) -> Iterator[Callable[..., Capture]]:
    started: list[Capture] = []

    def start(**overrides: object) -> Capture:
        flat: dict[str, object] = {"obs__port": obs.port, "obs__password": PASSWORD, "capture__interval_ms": 100}
        settings = settings_factory(**{**flat, **overrides})
        cap = Capture(settings, redis_client, keys)
        started.append(cap)
        return cap

    yield start
    for cap in started:
        cap.halt()


@pytest.mark.parametrize(
    ("source", "expect"),
    [(IMAGE, "red"), (VIDEO, "green"), ("", "red")],
    ids=["image_source", "ffmpeg_source", "program_scene"],
)
def test_frames_arrive_with_the_right_size(
    capture: Callable[..., Capture], obs: ObsInstance, source: str, expect: str
) -> None:
    obs.client().set_input_settings(IMAGE, {"file": str(obs.media_path)}, True)
    cap = capture(obs__source=source)
    wait_until(lambda: cap.published >= 3, timeout=20, message="3 frames from OBS")
    frame = cap.last_frame()
    assert (frame.format, frame.width, frame.height) == ("jpg", 640, 360)
    assert 5_000 < len(frame.image) < 200_000
    b, g, r = mean_bgr(frame)
    if expect == "red":
        assert r > 120 and b < 100
    else:
        assert g > 100 and r < 100


def test_png_full_hd(capture: Callable[..., Capture]) -> None:
    cap = capture(obs__source=SCENE, capture__image_format="png", capture__width=1920, capture__height=1080,
                  capture__interval_ms=1000)
    wait_until(lambda: cap.published >= 1, timeout=30, message="a PNG frame")
    frame = cap.last_frame()
    assert (frame.format, frame.width, frame.height) == ("png", 1920, 1080)


def test_switching_the_image_file_is_seen(
    capture: Callable[..., Capture], obs: ObsInstance, media: dict[str, Path]
) -> None:
    client = obs.client()
    client.set_input_settings(IMAGE, {"file": str(media["red"])}, True)
    cap = capture(obs__source=IMAGE)
    wait_until(lambda: cap.published >= 1 and mean_bgr(cap.last_frame())[2] > 120, timeout=20)
    client.set_input_settings(IMAGE, {"file": str(media["blue"])}, True)
    wait_until(lambda: mean_bgr(cap.last_frame())[0] > 120, timeout=20, message="the blue image")
    client.set_input_settings(IMAGE, {"file": str(media["red"])}, True)
    client.disconnect()


def test_missing_source_names_the_real_sources(capture: Callable[..., Capture]) -> None:
    cap = capture(obs__source="Gameplay")
    key = cap.keys.health("default", "capture")
    wait_until(lambda: b"no source named" in (cap.client.hget(key, "last_error") or b""), timeout=20)
    message = (cap.client.hget(key, "last_error") or b"").decode()
    assert "'Scene'" in message and "'Image' (image_source)" in message and "'Video' (ffmpeg_source)" in message


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_obs_killed_and_started_again_resumes(
    capture: Callable[..., Capture], obs: ObsInstance, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO, "owc")
    cap = capture(obs__source=SCENE)
    wait_until(lambda: cap.published >= 2, timeout=20)
    obs.kill() if how == "kill" else obs.stop()
    wait_until(lambda: "not reachable" in caplog.text, timeout=20, message="the outage noticed")
    before = cap.published
    obs.start(timeout=90)
    back = time.monotonic()
    wait_until(lambda: cap.published > before, timeout=15, message="capture resumed")
    assert time.monotonic() - back < 5.0
    if how == "stop":
        # a user closing OBS: ExitStarted or the close frame, never a crash
        assert "is closing (ExitStarted)" in caplog.text or "lost the connection" in caplog.text


def test_owc_bench_capture_prints_the_table_and_the_ratio() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "services", "bench", "capture", "--requests", "1", "--warmup", "1"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "machine: " in out and "cores" in out and "OBS 29" in out
    assert "PNG 1920x1080" in out and "defaults: JPG 640x360 q80" in out
    assert "time ratio" in out and "bytes ratio" in out
    assert "of a PNG 1920x1080 screenshot in OBS time" in out
    # One timed request on a shared 2-core CI box is too noisy to judge the time target
    # (`owc bench capture` with its default request count does that, see the README);
    # the verdict must be printed, and the bytes ratio does not depend on the load.
    assert "meets the target (<= 1/50)" in out or "MISSES the target (<= 1/50)" in out
    import re

    bytes_ratio = re.search(r"and 1/(\d+) of its bytes", out)
    assert bytes_ratio is not None and int(bytes_ratio.group(1)) >= 50, out
