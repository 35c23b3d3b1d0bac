"""Redis refusing writes (MISCONF on a full disk): pause, say why in one line, resume by itself (issue 13.4).

A real redis-server with AOF on a small tmpfs that the test fills up: the
inference and state workers run in threads, the gateway under uvicorn.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.publisher import FramePublisher, Picture
from services.capture.replay import ReplaySource
from services.common.contracts.keys import GROUP_INFERENCE, GROUP_STATE, Keys
from services.common.infra.redisio import write_refusal
from services.common.infra.streams import group_backlog
from services.inference.classifier import Classifier
from services.inference.worker import InferenceWorker
from services.state.worker import StateWorker
from tests.support.diskfull import redis_on_small_disk
from tests.support.gateway import GatewayThread, settings_for
from tests.support.waiting import wait_until
from tools.synthetic_model import write_synthetic_model

READABLE = "Redis cannot write: disk full (MISCONF)"


def test_a_full_disk_pauses_counting_with_one_line_and_it_resumes_with_nothing_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = write_synthetic_model(tmp_path / "v.onnx", width=64, height=32, channels=(8,),
                                  logit_bias=(0.0, 50.0, 0.0, 0.0))  # always `victory`
    jpeg = bytes(cv2.imencode(".jpg", np.full((360, 640, 3), 90, np.uint8))[1].tobytes())
    prefix = f"t{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    caplog.set_level(logging.INFO)
    with redis_on_small_disk(tmp_path) as disk:
        settings = settings_for(disk.server.url, prefix, **{
            "inference.model": str(model), "inference.max_frame_age_ms": 600_000,
            "state.reorder_window_ms": 50, "state.cooldown_s": 600,
        })
        client = disk.server.client()
        inference_client, state_client = disk.server.client(), disk.server.client()
        inference = InferenceWorker(inference_client, keys, Classifier.from_settings(settings.inference),
                                    settings.inference, "w1")
        state = StateWorker(state_client, keys, settings)
        folder = tmp_path / "replay"
        folder.mkdir()
        for i in range(3):
            cv2.imwrite(str(folder / f"{i}.jpg"), np.full((360, 640, 3), 90, np.uint8))
        replay_settings = settings.capture.model_copy(update={"fps": 4.0, "speed": 1000.0})
        replay_registry = CollectorRegistry()
        replay = ReplaySource(folder, replay_settings, disk.server.client(), keys, CaptureMetrics(replay_registry))
        stop = threading.Event()
        crashed: list[BaseException] = []

        def guarded(target: object) -> threading.Thread:
            def body() -> None:
                try:
                    target(stop)  # type: ignore[operator]
                except BaseException as exc:  # the point: this must not happen
                    crashed.append(exc)
                    raise
            return threading.Thread(target=body, daemon=True)

        gateway = GatewayThread(settings, tmp_path / "config").start()
        threads: list[threading.Thread] = []
        try:
            assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
            # inference labels two banner frames; the state service is not running yet
            publisher = FramePublisher(client, keys, "default", 512, CaptureMetrics(CollectorRegistry()), "obs")
            threads.append(guarded(inference.run))
            threads[-1].start()
            for _ in range(2):
                publisher.publish(Picture(int(time.time() * 1000), jpeg, "jpg", 640, 360))
            wait_until(lambda: client.exists(keys.labels) and client.xlen(keys.labels) == 2
                       and group_backlog(client, keys.frames, GROUP_INFERENCE).total == 0,
                       timeout=30, message="two labels")

            disk.fill()
            wait_until(lambda: disk.refusing_writes(client), timeout=15, message="Redis refusing writes")
            caplog.clear()
            threads.append(guarded(state.run))  # it starts on a Redis that cannot write
            threads[-1].start()
            threads.append(guarded(replay.run))  # so does a replay capture
            threads[-1].start()
            publisher.client = client
            with pytest.raises(Exception) as refused:  # capture cannot publish either
                publisher.publish(Picture(int(time.time() * 1000), jpeg, "jpg", 640, 360))
            assert write_refusal(refused.value) == "disk full (MISCONF)"

            def lines(logger: str) -> list[logging.LogRecord]:
                return [r for r in caplog.records if r.name == logger and READABLE in r.getMessage()]

            wait_until(lambda: lines("owc.state") and lines("owc.inference") and lines("owc.capture.replay"),
                       timeout=20, message="the readable line from state, inference and capture")
            # the gateway tells "cannot write" apart from "not reachable"
            ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
            assert ready.status_code == 503 and "Redis cannot write" in ready.json()["detail"], ready.text
            health = httpx.get(f"{gateway.url}/api/v1/channels/default/status", timeout=10).json()["health"]
            assert health["redis_write_error"] and "AOF" in health["redis_write_error"]
            adjust = httpx.post(f"{gateway.url}/api/v1/channels/default/adjust",
                                json={"outcome": "defeat", "delta": 1}, timeout=10)
            assert adjust.status_code == 503 and adjust.json()["code"] == "redis_write", adjust.text
            assert "Redis cannot write: disk full (MISCONF)" in adjust.json()["detail"]
            assert "not reachable" not in adjust.json()["detail"]
            # a while of refused writes: still one line per service, no traceback, nobody died
            time.sleep(1.5)  # not waiting for a result: letting the retries happen
            assert len(lines("owc.state")) == 1 and len(lines("owc.inference")) == 1
            assert len(lines("owc.capture.replay")) == 1
            assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
            assert not crashed and all(t.is_alive() for t in threads)
            assert client.hget(keys.state("default"), "victories") is None  # nothing counted meanwhile

            disk.free()
            wait_until(lambda: client.hget(keys.state("default"), "victories") == b"1", timeout=30,
                       message="the banner counted once space is back")
            wait_until(lambda: httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200, timeout=15)
            health = httpx.get(f"{gateway.url}/api/v1/channels/default/status", timeout=10).json()["health"]
            assert health["redis_write_error"] is None
            assert any(r.name == "owc.state" and "Redis can write again" in r.getMessage() for r in caplog.records)
            # and the pipeline goes on: the replay starts, its frames get labels and are handled (the channel is in
            # its cooldown now, so once capture has heard of it the replay leaves the frames less than a second of
            # replay time after the last one out: services/capture/cooldown.py)
            wait_until(lambda: replay.summary.finished, timeout=30, message="the replay once Redis can write")
            left_out = replay_registry.get_sample_value("owc_capture_frames_skipped_total", {"reason": "cooldown"})
            published = replay.summary.published
            assert published >= 1 and published + (left_out or 0) == 3, (published, left_out)
            wait_until(lambda: group_backlog(client, keys.labels, GROUP_STATE).total == 0
                       and client.xlen(keys.labels) == 2 + published, timeout=30,
                       message="the replay's frames handled")
            assert client.hget(keys.state("default"), "victories") == b"1"  # cooldown: counted once
            assert not crashed
        finally:
            stop.set()
            for t in threads:
                t.join(15)
            gateway.stop()
            for c in (client, inference_client, state_client, replay.client):
                c.close()
