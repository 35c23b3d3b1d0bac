"""OBS actions against the real OBS 29 (Debian obs-studio 29.0.2, obs-websocket 5.1.0) under Xvfb.

One OBS for the module, its replay buffer running (x264, clips into a temp
folder) and obs-websocket in debug mode, so the tests can count the requests
OBS received from its own log. The actions worker runs in-process against the
session's real Redis, as in tests/integration/test_actions_obs.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import redis

from services.actions.obs import build_obs_actions
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from tests.support.actions import WorkerThread, add_event, dead_letter_of_one_result, pending, start_worker
from tests.support.obs import SCENE, ObsInstance, requires_obs, start_replay_obs, still_image
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.obs, pytest.mark.slow, requires_obs]

PASSWORD = "actions-e2e"
STING = "Victory sting"
OTHER = "Just chatting"


@pytest.fixture(scope="module")
def obs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObsInstance]:
    instance = start_replay_obs(tmp_path_factory.mktemp("obs-actions"), free_port(), password=PASSWORD,
                                websocket_debug=True)
    try:
        client = instance.client()
        try:
            for scene in (STING, OTHER):
                client.send("CreateScene", {"sceneName": scene})
            # what a streamer has: a fade, not the harness's cut
            client.send("SetCurrentSceneTransition", {"transitionName": "Fade"})
            client.send("SetCurrentSceneTransitionDuration", {"transitionDuration": 300})
        finally:
            client.disconnect()
        yield instance
    finally:
        instance.close()


def obs_worker(redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], port: int,
               **obs_actions: Any) -> WorkerThread:
    flat = {f"actions__obs__{k}": v for k, v in obs_actions.items()}
    settings = settings_factory(obs__port=port, obs__password=PASSWORD, obs__timeout_s=5,
                                actions__retry_initial_s=0.05, actions__retry_max_s=0.2, **flat)
    stop = threading.Event()
    return start_worker(redis_client, keys, settings, build_obs_actions(settings.obs, settings.actions.obs, stop),
                        stop=stop)


def program_scene(obs: ObsInstance) -> str:
    client = obs.client()  # a second client, like the streamer's dock
    try:
        return str(client.send("GetCurrentProgramScene", raw=True)["currentProgramSceneName"])
    finally:
        client.disconnect()


def frames_in(clip: Path) -> int:
    capture = cv2.VideoCapture(str(clip))
    try:
        count = 0
        while capture.read()[0]:
            count += 1
        return count
    finally:
        capture.release()


def test_one_result_saves_one_clip_after_the_delay_and_a_redelivery_saves_none(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsInstance
) -> None:
    saves, clips = obs.requests_received("SaveReplayBuffer"), len(obs.saved_replays())
    w = obs_worker(redis_client, keys, settings_factory, obs.port, replay_buffer=True, replay_delay_s=1.0)
    try:
        started = time.monotonic()
        add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: len(obs.saved_replays()) == clips + 1, timeout=20, message="OBS to write the clip")
        took = time.monotonic() - started
        wait_until(lambda: pending(redis_client, keys) == 0, message="the event acked")
        assert obs.requests_received("SaveReplayBuffer") == saves + 1
        # the ack is lost (a kill after the record): the event is handed out again
        w.close()
        redis_client.xgroup_setid(keys.events("default"), "actions", "0")
        w = obs_worker(redis_client, keys, settings_factory, obs.port, replay_buffer=True, replay_delay_s=1.0)
        wait_until(lambda: w.worker.processed >= 1 and pending(redis_client, keys) == 0, message="handled again")
    finally:
        w.close()
    # obs-websocket logs a request before answering it: a second save would be counted by now
    assert obs.requests_received("SaveReplayBuffer") == saves + 1
    assert len(obs.saved_replays()) == clips + 1 and len(obs.replay_files()) == clips + 1
    assert took >= 1.0, "saved before the delay"
    clip = obs.saved_replays()[-1]
    assert frames_in(clip) >= 10, f"{clip} holds less than a second of video"  # 10 fps, ≥ 1 s buffered
    assert redis_client.llen(keys.action_dlq("obs-replay")) == 0


def test_a_stopped_replay_buffer_is_a_clear_dead_letter(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsInstance
) -> None:
    saves = obs.requests_received("SaveReplayBuffer")
    obs.stop_replay_buffer()
    try:
        w = obs_worker(redis_client, keys, settings_factory, obs.port, replay_buffer=True, replay_delay_s=0)
        letter = dead_letter_of_one_result(redis_client, keys, w, "obs-replay")
    finally:
        obs.start_replay_buffer()
    assert "replay buffer is not running" in letter["error"] and "Controls → Start Replay Buffer" in letter["error"]
    assert obs.requests_received("SaveReplayBuffer") == saves  # not tried: it would not start by itself


def test_a_profile_without_a_replay_buffer_is_a_clear_dead_letter(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    # OBS 29 answers every replay request with 604 "Replay buffer is not available" here
    plain = ObsInstance(tmp_path / "obs", free_port(), PASSWORD, still_image(tmp_path / "still.png"))
    try:
        plain.start(timeout=90)
        w = obs_worker(redis_client, keys, settings_factory, plain.port, replay_buffer=True, replay_delay_s=0)
        letter = dead_letter_of_one_result(redis_client, keys, w, "obs-replay")
    finally:
        plain.close()
    assert "replay buffer is not enabled" in letter["error"]
    assert "Settings → Output → Replay Buffer" in letter["error"] and "604" not in letter["error"]
    assert letter["attempts"] and redis_client.llen(keys.action_dlq("obs-replay")) == 1


def test_obs_29_has_no_chapters_which_is_said_once(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked = obs.requests_received("CreateRecordChapter")
    caplog.set_level(logging.INFO, logger="owc")
    w = obs_worker(redis_client, keys, settings_factory, obs.port, chapters=True)
    results = (("victory", (1, 0, 0)), ("defeat", (1, 1, 0)), ("draw", (1, 1, 1)))
    try:
        ids = [add_event(redis_client, keys, "default", "detected", results[0][0], 1, results[0][1], source="auto")]
        wait_until(lambda: w.worker.processed >= 1 and pending(redis_client, keys) == 0, message="the first handled")
        first = obs.requests_received("CreateRecordChapter")
        ids += [add_event(redis_client, keys, "default", "detected", outcome, 1, counts, source="auto")
                for outcome, counts in results[1:]]
        wait_until(lambda: w.worker.processed >= 3 and pending(redis_client, keys) == 0, message="handled")
        assert w.thread.is_alive()
    finally:
        w.close()
    said = [r.getMessage() for r in caplog.records if "no CreateRecordChapter" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("obs-chapter: OBS 29.") and "OBS 30.2 or newer" in said[0]
    # only the first result asked OBS (OBS's debug log once showed that one request twice: counted from after it);
    # the next ones leave no request and no line at all
    assert first > asked
    assert obs.requests_received("CreateRecordChapter") == first
    per_event = [r.getMessage() for r in caplog.records if "obs-chapter" in r.getMessage()
                 and any(i in r.getMessage() for i in ids[1:])]
    assert per_event == []
    assert redis_client.llen(keys.action_dlq("obs-chapter")) == 0
    status = json.loads(redis_client.hget(keys.action_status, "obs-chapter") or b"{}")
    assert status["status"] == "ok" and status["result"].startswith("not supported by this OBS")


def test_the_scene_is_shown_then_the_previous_one_returns(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsInstance
) -> None:
    assert program_scene(obs) == SCENE
    switches = obs.requests_received("SetCurrentProgramScene")
    w = obs_worker(redis_client, keys, settings_factory, obs.port, scene_victory=STING, scene_seconds=1.5)
    try:
        add_event(redis_client, keys, "default", "detected", "defeat", 1, (0, 1, 0), source="auto")  # no scene
        add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 1, 0), source="auto")
        wait_until(lambda: program_scene(obs) == STING, message="the sting on the program", interval=0.05)
        shown = time.monotonic()
        wait_until(lambda: program_scene(obs) == SCENE, message="the previous scene back", interval=0.05)
        lasted = time.monotonic() - shown
        wait_until(lambda: pending(redis_client, keys) == 0, message="acked")
    finally:
        w.close()
    # seen late or early by up to a poll (a connection each): 1.5 s ± slack, not at once, not forever
    assert 1.0 <= lasted <= 6.0, f"the sting stayed {lasted:.2f} s"
    # OBS's debug log can be written a little after the answer (seen under load: the switch back not yet in it once
    # the scene had returned); wait for both, then nothing more
    wait_until(lambda: obs.requests_received("SetCurrentProgramScene") >= switches + 2,
               message="both switches in OBS's log", interval=0.05)
    assert obs.requests_received("SetCurrentProgramScene") == switches + 2  # there and back, nothing more
    assert redis_client.llen(keys.action_dlq("obs-scene")) == 0


def test_a_scene_the_streamer_chose_meanwhile_is_left_alone(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsInstance
) -> None:
    assert program_scene(obs) == SCENE
    w = obs_worker(redis_client, keys, settings_factory, obs.port, scene_victory=STING, scene_seconds=1.0)
    try:
        add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        wait_until(lambda: program_scene(obs) == STING, message="the sting on the program", interval=0.05)
        client = obs.client()
        try:
            client.send("SetCurrentProgramScene", {"sceneName": OTHER})
        finally:
            client.disconnect()
        wait_until(lambda: pending(redis_client, keys) == 0, message="the sting's time over")
    finally:
        w.close()
    try:
        assert program_scene(obs) == OTHER
    finally:
        client = obs.client()
        try:
            client.send("SetCurrentProgramScene", {"sceneName": SCENE})
        finally:
            client.disconnect()
