"""OBS actions against the protocol-faithful obs-websocket 5 server (tests/support/obsws_server.py).

Each result saves the replay buffer once (after the delay), adds a chapter or
shows a scene for a while; a replay buffer that is not running is a clear
dead letter, an OBS without CreateRecordChapter is said once, and a lost ack
never saves a second clip.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from services.actions.obs import CHAPTERS_RECHECK_S, ObsChapterAction, build_obs_actions
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from tests.support.actions import WorkerThread, add_event, dead_letter_of_one_result, pending, start_worker
from tests.support.obsws_server import FakeSource, ObsWsServer, make_test_image
from tests.support.waiting import wait_until


@pytest.fixture
def obs() -> Iterator[ObsWsServer]:
    server = ObsWsServer(password="s3cret")
    server.add_source(FakeSource("Victory sting", "scene", make_test_image(text="GG")))
    server.start()
    yield server
    server.close()


def obs_worker(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer,
    **obs_actions: Any,
) -> WorkerThread:
    flat = {f"actions__obs__{k}": v for k, v in obs_actions.items()}
    settings = settings_factory(obs__port=obs.port, obs__password="s3cret", obs__timeout_s=2,
                                actions__retry_initial_s=0.05, actions__retry_max_s=0.2, **flat)
    stop = threading.Event()  # one stop for the worker and the actions' waits
    actions = build_obs_actions(settings.obs, settings.actions.obs, stop)
    return start_worker(redis_client, keys, settings, actions, stop=stop)


def count(obs: ObsWsServer, request_type: str) -> int:
    return sum(1 for t, _ in obs.requests if t == request_type)


def test_each_result_saves_the_replay_buffer_once_after_the_delay(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer
) -> None:
    obs.replay_buffer_active = True
    w = obs_worker(redis_client, keys, settings_factory, obs, replay_buffer=True, replay_delay_s=0.3)
    try:
        add_event(redis_client, keys, "default", "adjusted", "victory", 1, (1, 0, 0))  # manual: not by default
        add_event(redis_client, keys, "default", "detected", "victory", 1, (2, 0, 0), source="auto")
        add_event(redis_client, keys, "default", "undone", "victory", -1, (1, 0, 0))  # not a result
        add_event(redis_client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: pending(redis_client, keys) == 0 and w.worker.processed >= 4 and obs.replays_saved == 2,
                   timeout=15, message="two clips saved")
        # a lost ack: every event handed out again, no second clip
        w.close()
        redis_client.xgroup_setid(keys.events("default"), "actions", "0")
        w = obs_worker(redis_client, keys, settings_factory, obs, replay_buffer=True, replay_delay_s=0.3)
        wait_until(lambda: w.worker.processed >= 4 and pending(redis_client, keys) == 0, message="handled again")
    finally:
        w.close()
    assert obs.replays_saved == 2 and count(obs, "SaveReplayBuffer") == 2


def test_a_replay_buffer_that_is_not_running_is_a_clear_dead_letter(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer
) -> None:
    w = obs_worker(redis_client, keys, settings_factory, obs, replay_buffer=True, replay_delay_s=0)
    letter = dead_letter_of_one_result(redis_client, keys, w, "obs-replay")
    assert "replay buffer is not running" in letter["error"] and "Start Replay Buffer" in letter["error"]
    assert count(obs, "SaveReplayBuffer") == 0  # not retried: it would not start by itself


def test_a_profile_without_a_replay_buffer_says_where_to_enable_it(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer
) -> None:
    obs.replay_buffer_enabled = False  # OBS 29: 604 "Replay buffer is not available" (tests/e2e checks the real one)
    w = obs_worker(redis_client, keys, settings_factory, obs, replay_buffer=True, replay_delay_s=0)
    letter = dead_letter_of_one_result(redis_client, keys, w, "obs-replay")
    assert "not enabled" in letter["error"] and "Settings → Output → Replay Buffer" in letter["error"]
    assert count(obs, "GetReplayBufferStatus") == 1  # permanent: not retried


def test_chapters_when_recording_and_said_once_when_obs_has_none(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    obs.recording = True
    w = obs_worker(redis_client, keys, settings_factory, obs, chapters=True)
    try:
        add_event(redis_client, keys, "default", "detected", "victory", 1, (5, 3, 1), source="auto")
        wait_until(lambda: obs.chapters == ["VICTORY! 5W 3L 1D"], message="a chapter")
        obs.record_chapters = False  # an OBS before 30.2
        caplog.set_level(logging.WARNING, logger="owc.actions.obs")
        add_event(redis_client, keys, "default", "detected", "defeat", 1, (5, 4, 1), source="auto")
        add_event(redis_client, keys, "default", "detected", "draw", 1, (5, 4, 2), source="auto")
        wait_until(lambda: w.worker.processed >= 3 and pending(redis_client, keys) == 0, message="handled")
    finally:
        w.close()
    said = [r for r in caplog.records if "no CreateRecordChapter" in r.getMessage()]
    assert len(said) == 1 and "OBS 29.0.2-fake" in said[0].getMessage()
    assert redis_client.llen(keys.action_dlq("obs-chapter")) == 0
    assert count(obs, "CreateRecordChapter") == 2  # the draw was not asked: this OBS has none


def test_an_obs_without_chapters_is_asked_again_after_a_while(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer
) -> None:
    obs.recording = True
    obs.record_chapters = False
    now = [1000.0]
    settings = settings_factory(obs__port=obs.port, obs__password="s3cret", obs__timeout_s=2,
                                actions__obs__chapters=True)
    stop = threading.Event()
    action = ObsChapterAction(settings.obs, settings.actions.obs, stop, clock=lambda: now[0])
    w = start_worker(redis_client, keys, settings, [action], stop=stop)
    try:
        add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
        add_event(redis_client, keys, "default", "detected", "defeat", 1, (1, 1, 0), source="auto")
        wait_until(lambda: w.worker.processed >= 2 and pending(redis_client, keys) == 0, message="handled")
        assert count(obs, "CreateRecordChapter") == 1
        obs.record_chapters = True  # OBS upgraded and restarted meanwhile
        now[0] += CHAPTERS_RECHECK_S
        add_event(redis_client, keys, "default", "detected", "victory", 1, (2, 1, 0), source="auto")
        wait_until(lambda: obs.chapters == ["VICTORY! 2W 1L 0D"], message="a chapter again")
    finally:
        w.close()


def test_a_scene_is_shown_for_a_while_then_the_previous_one_returns(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], obs: ObsWsServer
) -> None:
    w = obs_worker(redis_client, keys, settings_factory, obs, scene_victory="Victory sting", scene_seconds=0.5)
    try:
        add_event(redis_client, keys, "default", "detected", "defeat", 1, (0, 1, 0), source="auto")  # no scene
        add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 1, 0), source="auto")
        wait_until(lambda: obs.program_scene == "Victory sting", message="the sting shown")
        wait_until(lambda: obs.program_scene == "Scene" and pending(redis_client, keys) == 0,
                   message="the previous scene back")
    finally:
        w.close()
    switches = [d["sceneName"] for t, d in obs.requests if t == "SetCurrentProgramScene"]
    assert switches == ["Victory sting", "Scene"]
