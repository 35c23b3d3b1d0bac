"""The Twitch actions (predictions, markers, sign-in) against the local Helix + OAuth server
(tests/support/helix.py) and a real redis-server; the service as a process for kill -9."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services.actions.formatting import EventContext
from services.actions.twitch.service import start_twitch
from services.actions.worker import caught_up
from services.common.config.settings import Settings
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Counts, Event
from services.common.contracts.twitch_records import PredictionRecord
from tests.integration.test_actions_chat import Chat as ChatFixture
from tests.integration.test_actions_chat import chat  # noqa: F401  (the chat bot on ngIRCd, a fixture)
from tests.support.actions import WorkerThread, add_event, pending, start_worker
from tests.support.gateway import ServiceProcess
from tests.support.helix import ALL_SCOPES, CLIENT_ID, HelixServer, IssuedToken
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until


def twitch_overrides(helix: HelixServer, token_file: Path, **extra: Any) -> dict[str, Any]:
    return {"actions.twitch.enabled": True, "actions.twitch.client_id": CLIENT_ID,
            "actions.twitch.oauth_url": helix.oauth_url, "actions.twitch.helix_url": helix.helix_url,
            "actions.twitch.token_file": str(token_file), "actions.twitch.timeout_s": 2,
            "actions.retry_initial_s": 0.05, "actions.retry_max_s": 0.3, "actions.max_attempts": 3, **extra}


def write_token(path: Path, token: IssuedToken) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token.file_json())
    os.chmod(path, 0o600)


class SayRecorder:
    """Stands in for the chat bot's ``say`` (the bot itself is tested against ngIRCd)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.predict_hook: Any = None

    def say(self, text: str, timeout: float = 5.0) -> None:
        self.lines.append(text)


class Twitch:
    """The Twitch actions and the actions worker in this process."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings, say_to: SayRecorder | None = None) -> None:
        self.client, self.keys, self.settings = client, keys, settings
        self.stop = threading.Event()
        self.actions = start_twitch(settings.actions.twitch, client, keys, self.stop, say_to)  # type: ignore[arg-type]
        self.worker: WorkerThread = start_worker(client, keys, settings, self.actions, stop=self.stop)

    def record(self) -> PredictionRecord | None:
        return PredictionRecord.from_json(self.client.get(self.keys.twitch_prediction("default")))

    def close(self) -> None:
        self.worker.close()


@pytest.fixture
def twitch_for(
    redis_client: redis.Redis, keys: Keys, settings_factory: Callable[..., Settings], helix: HelixServer,
    tmp_path: Path,
) -> Iterator[Callable[..., Twitch]]:
    started: list[Twitch] = []

    def start(token: IssuedToken | None = None, say_to: SayRecorder | None = None, **extra: Any) -> Twitch:
        path = tmp_path / "data" / "twitch_token.json"
        if token is not None:
            write_token(path, token)
        flat = {k.replace(".", "__"): v for k, v in twitch_overrides(helix, path, **extra).items()}
        t = Twitch(redis_client, keys, settings_factory(**flat), say_to)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def rearm(client: redis.Redis, keys: Keys, phase: str = "ready") -> str:
    """What the state service writes with every label: the phase and the log's last event."""
    last = client.xrevrange(keys.events("default"), count=1)
    last_id = last[0][0].decode() if last else ""
    client.hset(keys.state("default"), mapping={"phase": phase, "last_event_id": last_id})
    return last_id


def result(client: redis.Redis, keys: Keys, outcome: str, counts: tuple[int, int, int]) -> str:
    return add_event(client, keys, "default", "detected", outcome, 1, counts, source="auto")


# ---------------------------------------------------------------------- sign-in


def test_twitch_login_runs_the_device_code_flow_and_keeps_the_token_private(
    tmp_path: Path, helix: HelixServer, redis_server: RedisServer, prefix: str,
) -> None:
    proc = ServiceProcess(tmp_path / "login", "actions", {
        "redis.url": redis_server.url, "redis.prefix": prefix,
        **twitch_overrides(helix, Path("data/twitch_token.json"))}, "twitch-login").start()
    try:
        wait_until(lambda: "enter the code" in proc.log(), timeout=30, message="the code printed")
        (code,) = helix.device_codes()
        assert code in proc.log() and "https://www.twitch.tv/activate" in proc.log()
        helix.approve(code)
        assert proc.proc is not None
        assert proc.proc.wait(timeout=30) == 0, proc.log()
        out = proc.log()
    finally:
        proc.stop()
    path = tmp_path / "login" / "data" / "twitch_token.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["login"] == helix.login and saved["user_id"] == helix.user_id
    assert set(saved["scopes"]) == set(ALL_SCOPES)
    assert "signed in as owcstreamer" in out
    assert saved["access_token"] not in out and saved["refresh_token"] not in out


def test_a_token_about_to_expire_is_refreshed_and_saved(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys, tmp_path: Path,
) -> None:
    old = helix.issue(expires_in=60)  # inside the refresh margin
    t = twitch_for(old, actions__twitch__predictions=False)
    result(redis_client, keys, "victory", (1, 0, 0))
    wait_until(lambda: len(helix.markers) == 1, message="a marker")
    saved = json.loads((tmp_path / "data" / "twitch_token.json").read_text())
    assert saved["access_token"] != old.access_token and helix.tokens[old.access_token].revoked
    assert redis_client.hget(keys.twitch_status, "token") == b"ok"
    t.close()


@pytest.mark.parametrize(("scopes", "state"), [(ALL_SCOPES, "refused"), (("chat:read", "chat:edit"), "scopes")])
def test_a_revoked_or_under_scoped_token_is_one_line_and_a_red_status(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
    caplog: pytest.LogCaptureFixture, scopes: tuple[str, ...], state: str,
) -> None:
    token = helix.issue(scopes=scopes)
    if state == "refused":
        helix.revoke_all()
    with caplog.at_level(logging.INFO, logger="owc.actions.twitch"):
        twitch_for(token, actions__twitch__predictions=False)
        result(redis_client, keys, "victory", (1, 0, 0))
        result(redis_client, keys, "defeat", (1, 1, 0))
        wait_until(lambda: redis_client.llen(keys.action_dlq("twitch-marker")) == 2, message="two dead letters")
    assert redis_client.hget(keys.twitch_status, "token") == state.encode()
    errors = [r.getMessage() for r in caplog.records if r.name == "owc.actions.twitch" and r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # said once, not per result (each result is a dead letter with the reason)
    assert "owc actions twitch-login" in errors[0]
    letter = json.loads(redis_client.lindex(keys.action_dlq("twitch-marker"), 0) or b"{}")
    assert "owc actions twitch-login" in letter["error"]
    assert token.access_token not in caplog.text and token.refresh_token not in caplog.text
    assert helix.markers == []


# ---------------------------------------------------------------------- markers


def test_a_marker_per_result_and_offline_is_said_once(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="owc.actions.twitch"):
        twitch_for(helix.issue(), actions__twitch__predictions=False)
        result(redis_client, keys, "victory", (1, 0, 0))
        add_event(redis_client, keys, "default", "adjusted", "draw", 1, (1, 0, 1))
        add_event(redis_client, keys, "default", "adjusted", "victory", -1, (0, 0, 1))  # not a result: no marker
        wait_until(lambda: len(helix.markers) == 2 and caught_up(redis_client, keys, "default"),
                   message="two markers")
        helix.live = False
        for n in (1, 2, 3):
            result(redis_client, keys, "defeat", (0, n, 1))
        wait_until(lambda: caught_up(redis_client, keys, "default") and redis_client.hget(
            keys.twitch_status, "markers") == b"offline", message="three results while offline")
        helix.live = True
        result(redis_client, keys, "victory", (1, 3, 1))
        wait_until(lambda: len(helix.markers) == 3 and caught_up(redis_client, keys, "default"),
                   message="marking again when live")
    assert [m["description"] for m in helix.markers] == ["VICTORY · 1–0", "DRAW · 1–0–1", "VICTORY · 1–3–1"]
    offline = [r for r in caplog.records if r.name == "owc.actions.twitch" and "not live" in r.getMessage()]
    assert len(offline) == 1
    assert redis_client.llen(keys.action_dlq("twitch-marker")) == 0
    assert helix.count("POST", "/helix/streams/markers") == 6


def test_a_result_undone_inside_the_stream_delay_leaves_no_marker_and_a_correction_adds_none(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    twitch_for(helix.issue(), actions__twitch__predictions=False, actions__stream_delay_s=1)
    taken_back = add_event(redis_client, keys, "default", "adjusted", "draw", 1, (0, 0, 1))
    add_event(redis_client, keys, "default", "undone", "draw", -1, (0, 0, 0), undoes=taken_back)
    kept = result(redis_client, keys, "victory", (1, 0, 0))
    wait_until(lambda: len(helix.markers) == 1 and caught_up(redis_client, keys, "default"),
               message="the victory's marker, after the delay")
    undo_late = add_event(redis_client, keys, "default", "undone", "victory", -1, (0, 0, 0), undoes=kept)
    wait_until(lambda: caught_up(redis_client, keys, "default"), message="the late undo handled")
    done = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(keys.action_done("twitch-marker")).items()}
    assert [m["description"] for m in helix.markers] == ["VICTORY · 1–0"]  # it stays: Twitch cannot delete one
    assert done[f"default/{taken_back}"]["status"] == "cancelled"
    assert done[f"default/{undo_late}"]["result"] == "a correction: no marker"
    assert helix.count("POST", "/helix/streams/markers") == 1


def test_a_429_waits_for_ratelimit_reset_then_marks_once(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    twitch_for(helix.issue(), actions__twitch__predictions=False)
    helix.rate_limit(1)
    started = time.monotonic()
    ev = add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
    wait_until(lambda: redis_client.hexists(keys.action_done("twitch-marker"), f"default/{ev}"),
               message="the marker after the 429, recorded")
    assert len(helix.markers) == 1
    assert time.monotonic() - started >= 0.5  # it waited for Ratelimit-Reset (up to two seconds on)
    record = json.loads(redis_client.hget(keys.action_done("twitch-marker"), f"default/{ev}") or b"{}")
    assert record["status"] == "ok"
    assert helix.count("POST", "/helix/streams/markers") == 2


@pytest.mark.parametrize(("trickle_s", "flood_bytes", "said"), [
    (0.4, 0, "took longer than 1 s"), (0.0, 3 << 20, "larger than 1024 KiB")])
def test_a_trickling_or_flooding_answer_is_cut_at_the_deadline_and_the_size_limit(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
    trickle_s: float, flood_bytes: int, said: str,
) -> None:
    twitch_for(helix.issue(), actions__twitch__predictions=False, actions__twitch__timeout_s=1,
               actions__max_attempts=2)
    wait_until(lambda: redis_client.hget(keys.twitch_status, "token") == b"ok", message="signed in")
    helix.trickle_s, helix.flood_bytes = trickle_s, flood_bytes
    started = time.monotonic()
    add_event(redis_client, keys, "default", "detected", "victory", 1, (1, 0, 0), source="auto")
    wait_until(lambda: redis_client.llen(keys.action_dlq("twitch-marker")) == 1, timeout=30, message="given up")
    # two tries, each cut at about its 1 s deadline (a 100-byte answer at 0.4 s a byte would take 40 s)
    assert time.monotonic() - started < 8
    letter = json.loads(redis_client.lindex(keys.action_dlq("twitch-marker"), 0) or b"{}")
    assert said in letter["error"]
    helix.trickle_s, helix.flood_bytes = 0.0, 0


# ---------------------------------------------------------------------- predictions


def test_one_prediction_per_match_opened_at_the_rearm_and_resolved_with_the_result(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    redis_client.hset(keys.state("default"), mapping={"phase": "cooldown", "last_event_id": ""})
    t = twitch_for(helix.issue(), actions__twitch__markers=False)
    time.sleep(1.5)  # a tick or two: no prediction while the counter is not armed
    assert helix.predictions == []
    rearm(redis_client, keys)
    wait_until(lambda: (r := t.record()) is not None and r.status == "open", message="opened at the re-arm")
    first = helix.current()
    assert first is not None and first.title == "Will we win this match?"
    rearm(redis_client, keys, "cooldown")
    result(redis_client, keys, "victory", (1, 0, 0))
    wait_until(lambda: first.status == "RESOLVED", message="resolved")
    victory = next(o["id"] for o in first.outcomes if o["title"] == "Victory")
    assert first.winning_outcome_id == victory
    # the record is written once Helix has answered: wait for it, not for Helix alone
    wait_until(lambda: (r := t.record()) is not None and r.status == "resolved", message="recorded")
    rec = t.record()
    assert rec is not None and rec.status == "resolved" and rec.winner == "Victory"
    # the next match: one more prediction once re-armed, and a draw cancels (refunds) it
    time.sleep(1.5)
    assert len(helix.predictions) == 1  # still in cooldown
    rearm(redis_client, keys)
    wait_until(lambda: len(helix.predictions) == 2 and helix.predictions[1].status == "ACTIVE", message="2nd")
    result(redis_client, keys, "draw", (1, 0, 1))
    wait_until(lambda: helix.predictions[1].status == "CANCELED", message="a draw cancels")
    wait_until(lambda: (r := t.record()) is not None and r.status == "cancelled", message="recorded")
    rec = t.record()
    assert rec is not None and rec.status == "cancelled" and "refunded" in rec.result
    assert helix.count("POST", "/helix/predictions") == 2


def test_a_result_of_an_earlier_match_never_resolves_the_next_prediction(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    old = result(redis_client, keys, "defeat", (0, 1, 0))
    t = twitch_for(helix.issue(), actions__twitch__markers=False)
    wait_until(lambda: pending(redis_client, keys) == 0, message="the first result handled")
    rearm(redis_client, keys)
    wait_until(lambda: (r := t.record()) is not None and r.status == "open", message="opened")
    (action,) = [a for a in t.actions if a.name == "twitch-prediction"]
    stale = Event(type="detected", outcome="defeat", delta=1, counts=Counts(0, 1, 0), session="s1",
                  source="auto", ts=0, id=old)
    assert action.perform(EventContext("default", stale)) == "no prediction for this match"
    assert helix.current() is not None and helix.current().status == "ACTIVE"  # type: ignore[union-attr]


def test_a_prediction_already_running_is_ended_once_and_ours_opens(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = helix.issue()
    foreign = httpx.post(f"{helix.helix_url}/predictions", headers={
        "Authorization": f"Bearer {token.access_token}", "Client-Id": CLIENT_ID}, json={
        "broadcaster_id": helix.user_id, "title": "Who wins the raffle?",
        "outcomes": [{"title": "me"}, {"title": "you"}], "prediction_window": 600})
    assert foreign.status_code == 200
    # Twitch's own answer to a second one
    again = httpx.post(f"{helix.helix_url}/predictions", headers={
        "Authorization": f"Bearer {token.access_token}", "Client-Id": CLIENT_ID}, json={
        "broadcaster_id": helix.user_id, "title": "x", "outcomes": [{"title": "a"}, {"title": "b"}],
        "prediction_window": 60})
    assert again.status_code == 400 and "active" in again.json()["message"]
    rearm(redis_client, keys)
    with caplog.at_level(logging.INFO, logger="owc.actions.twitch"):
        t = twitch_for(token, actions__twitch__markers=False)
        wait_until(lambda: (r := t.record()) is not None and r.status == "open", message="ours open")
    assert [p.status for p in helix.predictions] == ["CANCELED", "ACTIVE"]
    assert sum("was still running" in r.getMessage() for r in caplog.records) == 1


def test_a_new_session_cancels_and_an_undo_after_a_resolution_is_explained_in_chat(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    said = SayRecorder()
    t = twitch_for(helix.issue(), say_to=said, actions__twitch__markers=False)
    rearm(redis_client, keys)
    wait_until(lambda: helix.current() is not None, message="opened")
    win = result(redis_client, keys, "victory", (1, 0, 0))
    wait_until(lambda: helix.predictions[0].status == "RESOLVED", message="resolved")
    redis_client.xadd(keys.events("default"), Event(  # type: ignore[arg-type]
        type="undone", outcome="victory", delta=-1, counts=Counts(), session="s1", source="manual", ts=1,
        undoes=win).to_fields())
    wait_until(lambda: len(said.lines) == 1, message="the chat line")
    assert "Twitch cannot un-resolve" in said.lines[0] and "Victory" in said.lines[0]
    rearm(redis_client, keys)
    wait_until(lambda: len(helix.predictions) == 2, message="the next one")
    add_event(redis_client, keys, "default", "session_started")
    wait_until(lambda: helix.predictions[1].status == "CANCELED", message="cancelled by the new session")
    wait_until(lambda: (r := t.record()) is not None and r.status == "cancelled", message="recorded")
    rec = t.record()
    assert rec is not None and rec.result == "new session"
    assert len(said.lines) == 1


def test_an_undo_that_comes_after_the_next_prediction_opened_is_explained_once(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    said = SayRecorder()
    t = twitch_for(helix.issue(), say_to=said, actions__twitch__markers=False)
    rearm(redis_client, keys)
    wait_until(lambda: helix.current() is not None, message="opened")
    win = result(redis_client, keys, "victory", (1, 0, 0))
    wait_until(lambda: helix.predictions[0].status == "RESOLVED", message="resolved")
    rearm(redis_client, keys)  # the next match: its prediction opens before the undo comes
    wait_until(lambda: len(helix.predictions) == 2 and helix.predictions[1].status == "ACTIVE",
               message="the next one open")
    undo = add_event(redis_client, keys, "default", "undone", "victory", -1, (0, 0, 0), undoes=win)
    wait_until(lambda: len(said.lines) == 1, message="the chat line")
    assert "Twitch cannot un-resolve" in said.lines[0] and "Victory" in said.lines[0]
    wait_until(lambda: caught_up(redis_client, keys, "default"), message="the undo handled")
    # handed out again (a crash between the line and the delivery's record): nothing more is said
    (action,) = [a for a in t.actions if a.name == "twitch-prediction"]
    again = Event(type="undone", outcome="victory", delta=-1, counts=Counts(), session="s1", source="manual",
                  ts=1, undoes=win, id=undo)
    assert action.perform(EventContext("default", again)) == "nothing to undo on Twitch"
    assert len(said.lines) == 1
    rec = t.record()
    assert rec is not None and rec.status == "open" and rec.id == helix.predictions[1].id  # untouched
    assert helix.predictions[1].status == "ACTIVE"


def test_no_result_in_time_cancels_and_the_same_match_is_not_reopened(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    t = twitch_for(helix.issue(), actions__twitch__markers=False, actions__twitch__result_timeout_s=60)
    rearm(redis_client, keys)
    wait_until(lambda: (r := t.record()) is not None and r.status == "open", message="opened")
    rec = t.record()
    assert rec is not None
    # an hour-old prediction, as after a long pause: the loop cancels it
    redis_client.set(keys.twitch_prediction("default"),
                     PredictionRecord(**{**rec.__dict__, "opened_at": rec.opened_at - 61_000}).to_json())
    wait_until(lambda: helix.predictions[0].status == "CANCELED", message="cancelled on time-out")
    time.sleep(2)
    assert len(helix.predictions) == 1  # the counter is still armed for the same match: not opened again


def test_a_create_whose_answer_was_lost_is_adopted_not_created_twice(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    helix.hold("POST", "/helix/predictions")
    rearm(redis_client, keys)
    t = twitch_for(helix.issue(), actions__twitch__markers=False)
    assert helix.held.wait(20)
    helix.release()  # the answer never comes (the connection closes): the service looks before creating again
    wait_until(lambda: (r := t.record()) is not None and r.status == "open", timeout=30, message="adopted")
    rec = t.record()
    assert len(helix.predictions) == 1 and rec is not None and rec.id == helix.predictions[0].id
    assert set(rec.outcomes) == {"victory", "defeat"}


def test_a_result_arriving_while_the_create_answer_is_lost_resolves_with_its_outcome(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    """Found by the Twitch evening: the result came while the record was still `opening` (the create's
    answer lost) and was refunded, as if the prediction had no outcomes. It is adopted first now."""
    helix.hold("POST", "/helix/predictions")
    rearm(redis_client, keys)
    t = twitch_for(helix.issue(), actions__twitch__markers=False)
    assert helix.held.wait(20)
    result(redis_client, keys, "defeat", (0, 1, 0))  # waits for the loop's create to time out, then goes first
    helix.release()
    wait_until(lambda: helix.predictions[0].status != "ACTIVE", timeout=30, message="ended")
    p = helix.predictions[0]
    assert p.status == "RESOLVED" and len(helix.predictions) == 1
    assert next(o["title"] for o in p.outcomes if o["id"] == p.winning_outcome_id) == "Defeat"
    wait_until(lambda: (r := t.record()) is not None and r.status == "resolved", message="recorded")
    rec = t.record()
    assert rec is not None and rec.status == "resolved" and rec.winner == "Defeat"


# ---------------------------------------------------------------------- the service as a process


def start_service(tmp_path: Path, redis_url: str, prefix: str, helix: HelixServer) -> ServiceProcess:
    return ServiceProcess(tmp_path / "actions", "actions", {
        "redis.url": redis_url, "redis.prefix": prefix, "actions.metrics_port": 0,
        **twitch_overrides(helix, tmp_path / "token.json")}).start()


@pytest.mark.slow
def test_exactly_one_prediction_across_a_kill_9_during_the_create(
    tmp_path: Path, helix: HelixServer, redis_server: RedisServer, redis_client: redis.Redis, prefix: str,
    keys: Keys,
) -> None:
    write_token(tmp_path / "token.json", helix.issue())
    redis_client.sadd(keys.channels, "default")
    rearm(redis_client, keys)
    helix.hold("POST", "/helix/predictions")
    proc = start_service(tmp_path, redis_server.url, prefix, helix)
    try:
        assert helix.held.wait(30), proc.log()
        proc.stop(kill=True)  # the prediction exists on Twitch; the service never heard of it
        helix.release()
        rec = PredictionRecord.from_json(redis_client.get(keys.twitch_prediction("default")))
        assert rec is not None and rec.status == "opening"
        proc = start_service(tmp_path, redis_server.url, prefix, helix)
        wait_until(lambda: (r := PredictionRecord.from_json(redis_client.get(keys.twitch_prediction("default"))))
                   is not None and r.status == "open", timeout=30, message="adopted after the restart")
        ev = result(redis_client, keys, "defeat", (0, 1, 0))
        wait_until(lambda: helix.predictions[0].status == "RESOLVED", timeout=20, message="resolved")
        # kill -9 at a quiet moment, and the result's event handed out again: nothing is ended twice
        wait_until(lambda: caught_up(redis_client, keys, "default"), message="acked")
        proc.stop(kill=True)
        proc = start_service(tmp_path, redis_server.url, prefix, helix)
        wait_until(lambda: len(helix.markers) == 1, timeout=30, message="the marker")
        time.sleep(1.5)
    finally:
        proc.stop()
    assert len(helix.predictions) == 1
    defeat = next(o["id"] for o in helix.predictions[0].outcomes if o["title"] == "Defeat")
    assert helix.predictions[0].winning_outcome_id == defeat
    assert helix.count("PATCH", "/helix/predictions") == 1
    done = json.loads(redis_client.hget(keys.action_done("twitch-prediction"), f"default/{ev}") or b"{}")
    assert done["status"] == "ok"


@pytest.mark.slow
def test_a_redis_restart_keeps_the_prediction_and_resolves_it_once(
    own_redis: RedisServer, keys: Keys, settings_factory: Callable[..., Settings], helix: HelixServer,
    tmp_path: Path,
) -> None:
    path = tmp_path / "token.json"
    write_token(path, helix.issue())
    flat = {k.replace(".", "__"): v for k, v in twitch_overrides(helix, path).items()}
    settings = settings_factory(redis__url=own_redis.url, actions__twitch__markers=False, **flat)
    client = own_redis.client()
    rearm(client, keys)
    t = Twitch(client, keys, settings)
    try:
        wait_until(lambda: (r := t.record()) is not None and r.status == "open", message="opened")
        own_redis.restart(kill=True)
        result(client, keys, "victory", (1, 0, 0))
        wait_until(lambda: helix.predictions[0].status == "RESOLVED", timeout=20, message="resolved after")
        wait_until(lambda: pending(client, keys) == 0, timeout=20, message="acked")
    finally:
        t.close()
        client.close()
    assert len(helix.predictions) == 1 and helix.count("PATCH", "/helix/predictions") == 1


# ---------------------------------------------------------------------- the admin page's card (API)


def test_the_card_api_shows_the_prediction_and_cancels_it_through_the_running_service(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
    settings_factory: Callable[..., Settings], tmp_path: Path,
) -> None:
    from services.common.contracts import health
    from services.common.contracts.health import ActionsHealth
    from tests.support.gateway import GatewayThread, post_json

    base = "/api/v1/actions/twitch"
    flat = {k.replace(".", "__"): v for k, v in twitch_overrides(helix, tmp_path / "data" / "t.json").items()}
    gw = GatewayThread(settings_factory(gateway__admin_token="t0ken", **flat)).start()
    try:
        shown = httpx.get(f"{gw.url}{base}", timeout=15).json()
        assert shown["enabled"] and shown["prediction"] is None and shown["token"]["state"] == "unknown"
        assert post_json(gw.url, f"{base}/prediction/cancel", {}, token="t0ken").status_code == 409  # none running
        t = twitch_for(helix.issue(), actions__twitch__markers=False, actions__twitch__auto_open=False)
        health.publish(redis_client, keys, "default", ActionsHealth(actions="twitch-prediction"))
        rearm(redis_client, keys)
        # the guard: no token, another site: no change
        assert post_json(gw.url, f"{base}/prediction/open", {}).status_code == 401
        assert httpx.post(f"{gw.url}{base}/prediction/open", json={}, headers={
            "Origin": "https://evil.example", "Authorization": "Bearer t0ken"}).status_code == 403
        assert redis_client.llen(keys.twitch_requests) == 0
        r = post_json(gw.url, f"{base}/prediction/open", {}, token="t0ken")
        assert r.status_code == 200, r.text
        wait_until(lambda: helix.current() is not None, message="opened from the admin page")
        wait_until(lambda: httpx.get(f"{gw.url}{base}", timeout=15).json()["prediction"]["status"] == "open",
                   message="shown open")
        shown = httpx.get(f"{gw.url}{base}", timeout=15).json()
        assert shown["token"] == {"state": "ok", "login": helix.login, "message": "signed in as owcstreamer",
                                  "ok": True}
        assert shown["prediction"]["by"] == "admin"
        assert post_json(gw.url, f"{base}/prediction/open", {}, token="t0ken").status_code == 409  # one at a time
        assert post_json(gw.url, f"{base}/prediction/cancel", {"x": 1}, token="t0ken").status_code == 422
        assert post_json(gw.url, f"{base}/prediction/cancel", {}, token="t0ken").status_code == 200
        wait_until(lambda: helix.predictions[0].status == "CANCELED", message="cancelled from the admin page")
        wait_until(lambda: httpx.get(f"{gw.url}{base}", timeout=15).json()["prediction"]["status"] == "cancelled",
                   message="shown cancelled")
        listed = httpx.get(f"{gw.url}/api/v1/actions", timeout=15).json()
        assert {a["name"]: a["kind"] for a in listed["actions"]}["twitch-prediction"] == "twitch"
        t.close()
    finally:
        gw.stop()


def test_a_refused_token_is_a_red_row_on_the_card(
    twitch_for: Callable[..., Twitch], helix: HelixServer, settings_factory: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    from tests.support.gateway import GatewayThread

    token = helix.issue()
    helix.revoke_all()
    twitch_for(token)
    flat = {k.replace(".", "__"): v for k, v in twitch_overrides(helix, tmp_path / "x.json").items()}
    gw = GatewayThread(settings_factory(**flat)).start()
    try:
        shown = httpx.get(f"{gw.url}/api/v1/actions/twitch", timeout=15).json()
    finally:
        gw.stop()
    assert shown["token"]["state"] == "refused" and not shown["token"]["ok"]
    assert "owc actions twitch-login" in shown["token"]["message"]


# ---------------------------------------------------------------------- chat: !predict and the undo notice


def test_predict_from_a_moderator_in_chat_and_an_undo_explained_in_chat(
    chat: ChatFixture, helix: HelixServer, redis_client: redis.Redis, keys: Keys,  # noqa: F811
    settings_factory: Callable[..., Settings], tmp_path: Path,
) -> None:
    from services.actions.chat import ChatAction
    from tests.integration.test_actions_chat import CHANNEL

    path = tmp_path / "token.json"
    write_token(path, helix.issue())
    flat = {k.replace(".", "__"): v for k, v in twitch_overrides(helix, path).items()}
    settings = settings_factory(actions__twitch__auto_open=False, actions__twitch__markers=False, **flat)
    actions = start_twitch(settings.actions.twitch, redis_client, keys, chat.stop, chat.bot)
    chat.worker.close()
    chat.worker = start_worker(redis_client, keys, settings, [ChatAction(chat.bot), *actions], stop=chat.stop)
    chat.proxy.set_badges("viewer", "subscriber/3")
    chat.proxy.set_badges("mod", "moderator/1", display_name="TheMod")
    viewer, mod = chat.user("viewer"), chat.user("mod")
    try:
        for user in (viewer, mod):
            user.join(CHANNEL)
        mod.say(CHANNEL, "!win")  # the channel's first command also opens its first session
        wait_until(lambda: "VICTORY! today 1W 0L 0D, 100%" in chat.bot_lines(viewer), timeout=20, message="1st")
        viewer.say(CHANNEL, "!predict")  # not a moderator: ignored
        wait_until(lambda: mod.has("PRIVMSG #streamer :!predict"), message="the viewer's line relayed")
        mod.say(CHANNEL, "!predict")
        wait_until(lambda: "@TheMod opening a prediction" in chat.bot_lines(viewer), message="the bot's answer")
        wait_until(lambda: helix.current() is not None, message="the prediction opened")
        mod.say(CHANNEL, "!loss")
        wait_until(lambda: helix.predictions[0].status == "RESOLVED", timeout=20, message="resolved by the !loss")
        mod.say(CHANNEL, "!undo")
        wait_until(lambda: any("cannot un-resolve" in line for line in chat.bot_lines(viewer)), timeout=20,
                   message="the undo explained")
        lines = chat.bot_lines(viewer)
    finally:
        for user in (viewer, mod):
            user.close()
    assert len(helix.predictions) == 1
    assert next(line for line in lines if "predict" in line.lower()) == "@TheMod opening a prediction"
    defeat = next(o["id"] for o in helix.predictions[0].outcomes if o["title"] == "Defeat")
    assert helix.predictions[0].winning_outcome_id == defeat
    assert sum("cannot un-resolve" in line for line in lines) == 1


# ---------------------------------------------------------------------- with the real state service


def test_predictions_follow_the_real_state_services_rearm(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis, prefix: str, keys: Keys,
    twitch_for: Callable[..., Twitch], helix: HelixServer,
) -> None:
    """Frames through `owc state`: the prediction opens when its phase is back to `ready`, not before."""
    from services.common.contracts.messages import Label
    from tests.support.gateway import start_state

    state = start_state(tmp_path, redis_server.url, prefix, **{
        "state.required_consecutive": 2, "state.cooldown_s": 1, "state.required_none": 3,
        "state.reorder_window_ms": 50})
    seq, t = 0, 1_760_000_000_000

    def frames(name: str, n: int) -> None:
        nonlocal seq, t
        for _ in range(n):
            seq, t = seq + 1, t + 500
            label = Label("default", seq, t, name, 0.99, {}, "m", "w", 1.0)  # type: ignore[arg-type]
            redis_client.xadd(keys.labels, label.to_fields())  # type: ignore[arg-type]

    def phase() -> bytes | None:
        return redis_client.hget(keys.state("default"), "phase")

    try:
        frames("none", 2)  # the channel's first session; ready
        wait_until(lambda: phase() == b"ready", timeout=20, message="the state service ready")
        tw = twitch_for(helix.issue(), actions__twitch__markers=False)
        wait_until(lambda: helix.current() is not None, message="the first prediction at ready")
        frames("victory", 3)
        wait_until(lambda: helix.predictions[0].status == "RESOLVED", timeout=20, message="resolved")
        assert phase() in (b"cooldown", b"waiting_for_none")
        time.sleep(2)
        assert len(helix.predictions) == 1  # not re-armed yet: no new prediction
        frames("none", 6)  # past the cooldown (frame time), then enough `none` to re-arm
        wait_until(lambda: len(helix.predictions) == 2, timeout=20, message="the second at the re-arm")
        frames("draw", 3)
        wait_until(lambda: helix.predictions[1].status == "CANCELED", timeout=20, message="a draw refunds")
        wait_until(lambda: (r := tw.record()) is not None and r.status == "cancelled", message="recorded")
        rec = tw.record()
    finally:
        state.stop()
    victory = next(o["id"] for o in helix.predictions[0].outcomes if o["title"] == "Victory")
    assert helix.predictions[0].winning_outcome_id == victory
    assert rec is not None and rec.status == "cancelled" and rec.result == "draw: refunded"


def test_the_session_start_a_prediction_opened_after_never_cancels_it(
    twitch_for: Callable[..., Twitch], helix: HelixServer, redis_client: redis.Redis, keys: Keys,
) -> None:
    """The first frame of a channel writes `session_started` and `ready` together: the prediction opened
    after that event is for the session's first match, and the event handed to the action later must
    not cancel it."""
    add_event(redis_client, keys, "default", "session_started")
    rearm(redis_client, keys)
    t = twitch_for(helix.issue(), actions__twitch__markers=False)
    wait_until(lambda: pending(redis_client, keys) == 0 and (r := t.record()) is not None and r.status == "open",
               message="opened, the session start handled")
    (action,) = [a for a in t.actions if a.name == "twitch-prediction"]
    rec = t.record()
    assert rec is not None
    start = Event(type="session_started", counts=Counts(), session="s1", source="manual", ts=0, id=rec.after)
    assert action.perform(EventContext("default", start)) == "no prediction running"
    assert helix.predictions[0].status == "ACTIVE"
