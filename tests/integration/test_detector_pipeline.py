"""The two-stage detector in the real worker, and what the admin page gets from it (real Redis, real state).

- an automatic detection keeps its frame and what each stage saw (GET …/detections/{seq});
- a near miss (the reader saw DEFEAT, not clearly enough) shows in the status's health, keeps its
  frame, and "count it" — the normal adjust with the frame's seq — counts it once and records the seq.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis
from PIL import Image, ImageDraw, ImageFont

from services.common.config.settings import DEFAULT_MODEL
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Event, Frame, Label
from services.inference.classifier import Classifier
from services.inference.worker import InferenceWorker
from tests.support.gateway import GatewayThread, ServiceProcess, settings_for, start_state
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until

W, H = 800, 450
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Oblique.ttf")


def _frame(text: str, colour: tuple[int, int, int]) -> bytes:
    sky = np.linspace(0, 1, H)[:, None, None] * np.array([30, 40, 60]) + np.array([200, 190, 170])
    img = Image.fromarray(np.broadcast_to(sky, (H, W, 3)).astype(np.uint8))
    layer = Image.new("L", (W, H), 0)
    ImageDraw.Draw(layer).text((W * 0.5, H * 0.465), text, fill=255,
                               font=ImageFont.truetype(str(FONT), int(H * 0.12)), anchor="mm")
    img.paste(Image.new("RGB", (W, H), colour), (0, 0), layer)
    return bytes(cv2.imencode(".jpg", np.asarray(img)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())


@pytest.fixture(scope="module")
def strict_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped detector with an acceptance level no reading reaches: every read outcome is a near miss."""
    folder = tmp_path_factory.mktemp("strict")
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text(encoding="utf-8"))
    meta["reader"].update(accept=-0.0001, near_miss=-3.0)
    (folder / "m.onnx").write_bytes(DEFAULT_MODEL.read_bytes())
    (folder / "m.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder / "m.onnx"


@pytest.fixture
def state(redis_server: RedisServer, prefix: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    proc = start_state(tmp_path / "state", redis_server.url, prefix)
    yield proc
    proc.stop()


@pytest.fixture
def gateway(redis_server: RedisServer, prefix: str, state: ServiceProcess) -> Iterator[GatewayThread]:
    gw = GatewayThread(settings_for(redis_server.url, prefix)).start()
    yield gw
    gw.stop()


def _run_worker(redis_server: RedisServer, keys: Keys, model: Path, frames: list[bytes]) -> list[Label]:
    settings = settings_for(redis_server.url, keys.prefix, **{"inference.model": str(model)})
    client = redis_server.client()
    now = int(time.time() * 1000)
    for seq, data in enumerate(frames, start=1):
        client.xadd(keys.frames, Frame("default", seq, now + 250 * seq, "jpg", W, H, data).to_fields())  # type: ignore[arg-type]
    worker = InferenceWorker(client, keys, Classifier.from_settings(settings.inference), settings.inference, "w")
    worker.run(threading.Event(), max_messages=len(frames))
    worker._publish_health(force=True)
    out = [Label.from_fields(f) for _, f in client.xrange(keys.labels)]
    client.close()
    return out


def test_a_detection_keeps_its_frame_and_each_stage_scores(
    redis_server: RedisServer, keys: Keys, gateway: GatewayThread
) -> None:
    labels = _run_worker(redis_server, keys, DEFAULT_MODEL, [_frame("DEFEAT", (250, 40, 40))] * 2)
    assert [(lb.label, lb.confidence >= 0.9) for lb in labels] == [("defeat", True)] * 2
    base = f"{gateway.url}/api/v1/channels/default"
    wait_until(lambda: httpx.get(f"{base}/status").json()["defeats"] == 1, timeout=15, message="the defeat counted")
    event = httpx.get(f"{base}/history").json()["events"][0]
    assert event["type"] == "detected" and event["source"] == "auto"
    info = httpx.get(f"{base}/detections/{event['frame_seq']}").json()
    assert info["label"] == "defeat" and info["stages"]["gate"]["score"] >= info["stages"]["gate"]["threshold"]
    assert info["stages"]["reader"]["scores"]["defeat"] > info["stages"]["reader"]["accept"]
    assert httpx.get(f"{base}/detframe/{event['frame_seq']}.jpg").content[:2] == b"\xff\xd8"
    assert httpx.get(f"{base}/detections/999999").status_code == 404


def test_a_near_miss_is_shown_and_can_be_counted_once_by_hand(
    redis_server: RedisServer, keys: Keys, gateway: GatewayThread, strict_model: Path, redis_client: redis.Redis
) -> None:
    # a pale DEFEAT: PP-OCRv6 small reads the red one at -0.0001 per letter, as well as the strict level itself
    labels = _run_worker(redis_server, keys, strict_model, [_frame("DEFEAT", (230, 200, 180))])
    assert labels[0].confidence < 0.9  # not counted by the rules
    base = f"{gateway.url}/api/v1/channels/default"
    near = httpx.get(f"{base}/status").json()["health"]["near_miss"]
    assert near is not None and near["outcome"] == "defeat" and near["frame_seq"] == 1
    assert redis_client.exists(keys.detframe("default", 1)) and redis_client.exists(keys.detinfo("default", 1))
    assert httpx.get(f"{base}/detections/1").json()["stages"]["reader"]["near_miss"] == "defeat"
    # "count it": the ordinary adjust command, carrying the frame
    r = httpx.post(f"{base}/adjust", json={"outcome": "defeat", "delta": 1, "frame_seq": 1,
                                           "note": "near miss (frame 1) counted by hand"})
    assert r.status_code == 200, r.text
    assert r.json()["status"]["defeats"] == 1
    entries = redis_client.xrange(keys.events("default"))
    events = [Event.from_fields(f, i) for i, f in entries]  # type: ignore[arg-type]
    assert [(e.type, e.source, e.outcome, e.frame_seq) for e in events if e.type != "session_started"] == [
        ("adjusted", "manual", "defeat", 1)
    ]
    bad = httpx.post(f"{base}/adjust", json={"outcome": "defeat", "delta": 1, "frame_seq": -5})
    assert bad.status_code == 422


def _gameplay() -> bytes:
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (40, 120, 60)
    cv2.circle(img, (W // 2, H // 2), 120, (200, 200, 200), -1)
    return bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())


def test_a_banner_the_gate_misses_is_still_counted_and_not_read_again_in_cooldown(
    redis_server: RedisServer, keys: Keys, gateway: GatewayThread, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # the shipped detector with a gate that passes nothing: only the reader's schedule can find the banner
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text(encoding="utf-8"))
    meta["gate"]["threshold"] = 0.999
    (tmp_path / "blind.onnx").write_bytes(DEFAULT_MODEL.read_bytes())
    (tmp_path / "blind.json").write_text(json.dumps(meta), encoding="utf-8")
    settings = settings_for(redis_server.url, keys.prefix, **{"inference.model": str(tmp_path / "blind.onnx")})
    worker = InferenceWorker(redis_client, keys, Classifier.from_settings(settings.inference), settings.inference, "w")
    now = int(time.time() * 1000)
    banner = _frame("DRAW", (230, 40, 50))
    frames = [_gameplay()] * 3 + [banner] * 6
    for seq, data in enumerate(frames, start=1):
        redis_client.xadd(keys.frames, Frame("default", seq, now + 250 * seq, "jpg", W, H, data).to_fields())  # type: ignore[arg-type]
    worker.run(threading.Event(), max_messages=len(frames))
    labels = [Label.from_fields(f) for _, f in redis_client.xrange(keys.labels)]
    assert [lb.label for lb in labels] == ["none"] * 4 + ["draw"] * 5
    assert labels[4].read == "draw" and labels[4].score is not None and labels[4].score > -2.0
    assert labels[0].read == "" and labels[0].score is None  # not read: no reader evidence
    base = f"{gateway.url}/api/v1/channels/default"
    wait_until(lambda: httpx.get(f"{base}/status").json()["draws"] == 1, timeout=15, message="the draw counted")
    # the schedule's reads, each afresh (schedule.fresh_confirm: a count resting on them rests on two readings); the
    # frames were all queued before the rules counted, so no frame here sees the cooldown that follows the count
    assert worker.banner.stats.candidates == 0 and worker.banner.stats.full_reads <= len(frames) - 3
    # in cooldown (read from the state snapshot) nothing is read that cannot change a count: the schedule
    # (following the banner) stops; only the gate's candidates would be read, reusing the reading
    reads, skipped = worker.banner.stats.full_reads, worker.banner.stats.cooldown_skipped
    worker.banner.clock = lambda: time.monotonic() + 60.0  # the phase it read a moment ago is old news
    for seq in range(10, 16):
        redis_client.xadd(keys.frames, Frame("default", seq, now + 250 * seq, "jpg", W, H, banner).to_fields())  # type: ignore[arg-type]
    worker.run(threading.Event(), max_messages=6)
    later = [Label.from_fields(f) for _, f in redis_client.xrange(keys.labels)][len(frames):]
    assert [lb.label for lb in later] == ["none"] * 6
    # the follow reads the banner had left (Schedule.follow) are skipped; then there is no reason to read
    assert worker.banner.stats.full_reads == reads and worker.banner.stats.cooldown_skipped - skipped == 4
    assert httpx.get(f"{base}/status").json()["draws"] == 1


def test_in_cooldown_a_banner_is_read_once_and_its_frame_kept_once(
    redis_server: RedisServer, keys: Keys, redis_client: redis.Redis
) -> None:
    """Nothing in cooldown is counted: the banner's entry (the area still moving) is not read, the frame it
    settles on is read and kept (thumbnail, stages), its followers reuse that reading and are not stored."""
    settings = settings_for(redis_server.url, keys.prefix)
    worker = InferenceWorker(redis_client, keys, Classifier.from_settings(settings.inference), settings.inference, "w")
    now = int(time.time() * 1000)
    redis_client.hset(keys.state("default"), mapping={"phase": "cooldown", "cooldown_until": now + 600_000})
    banner = _frame("VICTORY", (230, 40, 50))
    for seq in range(1, 5):
        redis_client.xadd(keys.frames, Frame("default", seq, now + 250 * seq, "jpg", W, H, banner).to_fields())  # type: ignore[arg-type]
    worker.run(threading.Event(), max_messages=4)
    labels = [Label.from_fields(f) for _, f in redis_client.xrange(keys.labels)]
    # the channel's first frame has nothing to hold still against: the gate's label alone
    assert [lb.label for lb in labels] == ["none", "victory", "victory", "victory"]
    assert worker.banner.stats.full_reads == 1 and worker.banner.stats.cooldown_moving == 1
    kept = [seq for seq in range(1, 5) if redis_client.exists(keys.detframe("default", seq))]
    assert kept == [2]
    info = json.loads(redis_client.get(keys.detinfo("default", 2)))  # type: ignore[arg-type]
    assert info["stages"]["cooldown"] is True and info["label"] == "victory"
    assert not any(redis_client.exists(keys.detinfo("default", seq)) for seq in (1, 3, 4))
