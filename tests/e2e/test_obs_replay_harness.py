"""The ``replay_obs`` fixture other e2e tests build on: a real OBS 29 whose replay buffer saves finished clips."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from tests.support.obs import REPLAY_SECONDS, SCENE, ObsInstance, requires_obs
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.obs, pytest.mark.slow, requires_obs]


def test_a_save_is_listed_once_finished_and_the_canvas_stays_full_size(replay_obs: ObsInstance) -> None:
    assert replay_obs.replay_buffer_active() and replay_obs.replay_buffered_s() >= 1.0
    before = replay_obs.saved_replays()
    client = replay_obs.client()
    try:
        client.send("SaveReplayBuffer")
        shot = client.send("GetSourceScreenshot", {"sourceName": SCENE, "imageFormat": "png"}, raw=True)
    finally:
        client.disconnect()
    [clip] = wait_until(lambda: replay_obs.saved_replays()[len(before):], timeout=10, message="a finished clip")
    assert clip.parent == replay_obs.replay_buffer_dir and clip.suffix == ".mkv"
    capture = cv2.VideoCapture(str(clip))
    try:
        ok, frame = capture.read()
        frames = 1 + sum(1 for _ in iter(lambda: capture.read()[0], False))
    finally:
        capture.release()
    assert ok and frame.shape[:2] == (360, 640)  # the encoded output
    assert 10 <= frames <= (REPLAY_SECONDS + 2) * 10  # 10 fps, at most the buffer's length
    png = base64.b64decode(shot["imageData"].split(",", 1)[1])
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (1080, 1920)  # the canvas and screenshots are not scaled
