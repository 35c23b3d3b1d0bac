"""Burst confirmation against a real redis-server: a hint makes the real capture loop take the next frame at once
(OBS source on the obs-websocket test server, and the replay source), bounded, and inference sends the hint."""

from __future__ import annotations

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
from services.capture.replay import ReplaySource
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Frame
from services.common.infra.burst import BurstListener, request_bursts
from services.inference.classifier import Classifier
from services.inference.worker import InferenceWorker
from tests.support.obsws_server import ObsWsServer
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until
from tools.synthetic_model import write_synthetic_model

FAST = Backoffs(connect_initial=0.05, connect_max=0.5, auth=0.3, kicked=0.5, config_error=0.2)


def frames_of(client: redis.Redis, keys: Keys) -> list[Frame]:
    return [Frame.from_fields(f) for _, f in client.xrange(keys.frames)]


def hint(client: redis.Redis, keys: Keys, seq: int, channel: str = "default") -> int:
    """What inference does on a candidate; returns how many captures listened."""
    return request_bursts(client, keys, [(channel, seq)])


class Loop:
    """A capture source running in a thread."""

    def __init__(self, source: ObsSource | ReplaySource, registry: CollectorRegistry) -> None:
        self.source, self.registry, self.stop = source, registry, threading.Event()
        self.thread = threading.Thread(target=source.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def bursts(self) -> float:
        return self.registry.get_sample_value("owc_capture_bursts_total") or 0.0

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def loops() -> Iterator[list[Loop]]:
    running: list[Loop] = []
    yield running
    for loop in running:
        loop.halt()


@pytest.fixture
def obs_server() -> Iterator[ObsWsServer]:
    server = ObsWsServer(password=None).start()
    yield server
    server.close()


@pytest.fixture
def start_obs(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, obs_server: ObsWsServer,
    loops: list[Loop],
) -> Callable[..., Loop]:
    def start(**overrides: object) -> Loop:
        settings = settings_factory(obs__port=obs_server.port, **overrides)
        registry = CollectorRegistry()
        source = ObsSource(settings.obs, settings.capture, redis_client, keys, CaptureMetrics(registry), backoffs=FAST)
        loops.append(Loop(source, registry))
        return loops[-1]

    return start


def wait_listening(client: redis.Redis, keys: Keys, channel: str = "default") -> None:
    topic = keys.capture_burst(channel)
    wait_until(lambda: client.pubsub_numsub(topic)[0][1] >= 1, message="capture subscribed to its hints")


def test_a_hint_takes_the_next_obs_frame_at_once(
    start_obs: Callable[..., Loop], redis_client: redis.Redis, keys: Keys
) -> None:
    loop = start_obs(capture__interval_ms=3000)  # the next regular slot is 3 s away
    wait_until(lambda: len(frames_of(redis_client, keys)) == 1, message="the first frame")
    wait_listening(redis_client, keys)
    first = frames_of(redis_client, keys)[0]
    asked = time.time() * 1000
    assert hint(redis_client, keys, first.seq) == 1
    wait_until(lambda: len(frames_of(redis_client, keys)) == 2, timeout=2.5, message="the burst frame")
    second = frames_of(redis_client, keys)[1]
    assert second.seq == first.seq + 1
    assert second.captured_at - asked < 1500  # taken on the hint, not at the 3 s slot
    assert loop.bursts() == 1
    # the slot after the burst keeps its own time (3 s after the first), so no third frame yet
    assert len(frames_of(redis_client, keys)) == 2


def test_a_hint_about_an_older_frame_or_with_bursts_off_takes_nothing(
    start_obs: Callable[..., Loop], redis_client: redis.Redis, keys: Keys
) -> None:
    loop = start_obs(capture__interval_ms=1500)
    wait_until(lambda: len(frames_of(redis_client, keys)) == 2, timeout=5, message="two regular frames")
    wait_listening(redis_client, keys)
    older = frames_of(redis_client, keys)[0].seq
    hint(redis_client, keys, older)  # frame 2 was taken after it: already the confirmation
    wait_until(lambda: loop.source.hints is not None and loop.source.hints.received == 1, message="hint heard")
    assert len(frames_of(redis_client, keys)) == 2 and loop.bursts() == 0
    loop.halt()
    # capture.burst=false: nobody listens
    off = ObsSource(
        loop.source.obs, loop.source.cfg.model_copy(update={"burst": False}), redis_client, keys, CaptureMetrics(
            CollectorRegistry()), backoffs=FAST,
    )
    assert off.hints is None


def test_hints_without_end_never_raise_the_obs_rate(
    start_obs: Callable[..., Loop], redis_client: redis.Redis, keys: Keys
) -> None:
    interval = 0.2
    loop = start_obs(capture__interval_ms=int(interval * 1000))
    wait_listening(redis_client, keys)
    stop = threading.Event()

    def flood() -> None:  # every frame a candidate, its hint sent at once, and more
        while not stop.is_set():
            last = redis_client.xrevrange(keys.frames, count=1)
            if last:
                hint(redis_client, keys, Frame.from_fields(last[0][1]).seq)
            time.sleep(0.005)

    flooder = threading.Thread(target=flood, daemon=True)
    t0 = time.time() * 1000
    flooder.start()
    time.sleep(2.0)  # the window being measured, not a wait for a result
    stop.set()
    flooder.join(5)
    t1 = time.time() * 1000
    taken = [f for f in frames_of(redis_client, keys) if t0 <= f.captured_at <= t1]
    assert len(taken) <= (t1 - t0) / 1000 / interval + 2
    assert loop.bursts() >= 3  # the hints were honoured, within the bound


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "frames"
    path.mkdir()
    for i in range(8):
        cv2.imwrite(str(path / f"f_{i:03d}.png"), np.full((90, 160, 3), i * 30, np.uint8))
    return path


def test_a_hint_takes_the_next_replay_frame_at_the_current_replay_time(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, folder: Path,
    loops: list[Loop],
) -> None:
    settings = settings_factory(capture__fps=0.5, capture__speed=1)  # a frame every 2 s
    registry = CollectorRegistry()
    loops.append(Loop(ReplaySource(folder, settings.capture, redis_client, keys, CaptureMetrics(registry)), registry))
    wait_until(lambda: len(frames_of(redis_client, keys)) == 1, message="the first frame")
    wait_listening(redis_client, keys)
    first = frames_of(redis_client, keys)[0]
    assert hint(redis_client, keys, first.seq) == 1
    wait_until(lambda: len(frames_of(redis_client, keys)) == 2, timeout=1.5, message="the burst frame")
    second = frames_of(redis_client, keys)[1]
    # the folder's next picture, in order, stamped between frame 0's and frame 1's replay time
    image = cv2.imdecode(np.frombuffer(second.image, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert float(image.mean()) == pytest.approx(30, abs=3)
    assert first.captured_at < second.captured_at < first.captured_at + 2000
    assert loops[0].bursts() == 1


def test_a_hint_takes_the_video_frame_on_screen_at_the_current_replay_time(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, keys: Keys, tmp_path: Path,
    loops: list[Loop],
) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20, (160, 90))
    for i in range(60):  # 3 s at 20 fps; video frame i has brightness 3*i
        writer.write(np.full((90, 160, 3), 3 * i, np.uint8))
    writer.release()
    settings = settings_factory(capture__fps=1, capture__speed=1)  # samples at 0 s, 1 s, 2 s: frames 0, 20, 40
    registry = CollectorRegistry()
    loops.append(Loop(ReplaySource(video, settings.capture, redis_client, keys, CaptureMetrics(registry)), registry))
    wait_until(lambda: len(frames_of(redis_client, keys)) == 1, message="the first frame")
    wait_listening(redis_client, keys)
    first = frames_of(redis_client, keys)[0]
    assert hint(redis_client, keys, first.seq) == 1
    wait_until(lambda: len(frames_of(redis_client, keys)) == 2, timeout=1.0, message="the burst frame")
    wait_until(lambda: len(frames_of(redis_client, keys)) == 3, timeout=4.0, message="the next regular frame")

    def level(frame: Frame) -> float:
        return float(cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_GRAYSCALE).mean())

    _, burst, regular = frames_of(redis_client, keys)
    replay_s = (burst.captured_at - first.captured_at) / 1000
    assert 0 < replay_s < 1
    # the video frame at that replay time (the first one at or after it), not sample 1's frame 20
    on_screen = -(-replay_s * 20 // 1)
    assert level(burst) == pytest.approx(3 * on_screen, abs=5)
    assert level(burst) < 3 * 20 - 2
    assert level(regular) == pytest.approx(3 * 40, abs=3)  # the next sample keeps its own time and frame
    assert regular.captured_at - first.captured_at == 2000
    assert loops[0].bursts() == 1


def test_inference_hints_its_capture_when_it_reads_an_outcome(
    settings_factory: Callable[..., Settings], redis_server: RedisServer, redis_client: redis.Redis, keys: Keys,
    tmp_path: Path,
) -> None:
    listener = BurstListener(redis_client, keys, "main")
    stop = threading.Event()
    assert listener.wait(0.01, stop) is None  # subscribes
    jpeg = cv2.imencode(".jpg", np.full((32, 64, 3), 128, np.uint8))[1].tobytes()
    for bias, expect in (((0.0, 50.0, 0.0, 0.0), 7), ((50.0, 0.0, 0.0, 0.0), None)):
        model = write_synthetic_model(tmp_path / f"m{bias[0]:.0f}.onnx", width=64, height=32, channels=(8,),
                                      logit_bias=bias)
        settings = settings_factory(inference__model=str(model))
        worker = InferenceWorker(redis_server.client(), keys, Classifier.from_settings(settings.inference),
                                 settings.inference, "w")
        redis_client.xadd(keys.frames, Frame("main", 7, int(time.time() * 1000), "jpg", 64, 32, jpeg).to_fields())  # type: ignore[arg-type]
        assert worker.run(threading.Event(), max_messages=1) == 1
        assert listener.wait(0.5 if expect else 0.2, stop) == expect  # a `victory` frame is a candidate, `none` not
        worker.client.close()
    listener.close()
