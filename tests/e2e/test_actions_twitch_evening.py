"""A recorded evening through `owc run` with the Twitch actions on the local Helix server.

Four matches (capture → inference → state → gateway → actions, embedded Redis), the Twitch
predictions and markers signed in through a token file as `owc actions twitch-login` writes it.
During the evening `owc actions` is killed (kill -9) while the create request of a prediction is
in flight (Twitch made it, the service never heard back), and Redis restarts. At the end: one
prediction per match, each opened only once the counter had re-armed after the previous result
and ended with that match's outcome (a draw refunded), one marker per result, and the token in no
log line.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.common.keys import Keys
from services.common.messages import Event
from services.common.settings import DEFAULT_MODEL
from tests.e2e.test_actions_evening import _events, _settled
from tests.support.clips import evening
from tests.support.helix import CLIENT_ID, HelixServer
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the shipped model is missing"),
]

PREFIX = "e2eevening"  # the helpers of the other evening read this prefix
OUTCOMES = ["victory", "defeat", "draw", "victory"]
TITLES = {"victory": "Victory", "defeat": "Defeat"}
COOLDOWN_S = 6


@pytest.fixture
def helix() -> Iterator[HelixServer]:
    server = HelixServer().start()
    yield server
    server.stop()


def test_an_evening_has_one_prediction_and_one_marker_per_match_across_a_kill_9_and_a_redis_restart(
    tmp_path: Path, helix: HelixServer
) -> None:
    clip, _played, _starts = evening(tmp_path / "clip", OUTCOMES, banner_frames=12)
    home = tmp_path / "stack"
    (home / "data").mkdir(parents=True)
    token = helix.issue()
    (home / "data" / "twitch_token.json").write_text(token.file_json())
    (home / "data" / "twitch_token.json").chmod(0o600)
    (home / "owc.toml").write_text(
        "[actions]\nmax_attempts = 12\nretry_initial_s = 0.2\nretry_max_s = 1\n"
        "[actions.twitch]\nenabled = true\n"
        f'client_id = "{CLIENT_ID}"\noauth_url = "{helix.oauth_url}"\nhelix_url = "{helix.helix_url}"\n'
        "timeout_s = 3\n"
    )
    stack = Stack(home, "--processes", "--source", f"replay:{clip}", "--fps", "4", "--speed", "2", settings={
        "redis.prefix": PREFIX, "state.cooldown_s": COOLDOWN_S, "state.required_none": 8,
        "state.reorder_window_ms": 300, "run.restart_backoff_max_s": 1,
    })
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    keys = Keys(PREFIX)

    def detections() -> list[Event]:
        return [e for e in _events(client) if e.type == "detected"]

    def wait_detections(n: int) -> None:
        wait_until(lambda: len(detections()) >= n, timeout=90, message=f"{n} matches (log: {stack.log_path})")

    try:
        stack.start()
        wait_until(lambda: helix.current() is not None, timeout=60, message="the first prediction")
        wait_detections(1)
        wait_until(lambda: helix.predictions[0].status == "RESOLVED", timeout=30, message="the first resolved")
        # the next create: Twitch makes it, and `owc actions` dies before it hears back
        helix.hold("POST", "/helix/predictions")
        assert helix.held.wait(60), f"the second create never came (log: {stack.log_path})"
        victim = stack.children()["actions"]
        victim.send_signal(signal.SIGKILL)
        helix.release()
        wait_until(lambda: (c := stack.children().get("actions")) is not None and c.pid != victim.pid,
                   timeout=30, message="`owc actions` restarted by the supervisor")
        wait_detections(2)
        # Redis restarts (SIGTERM: it writes its AOF; the supervisor starts it again)
        old_redis = stack.children()["redis"]
        old_redis.send_signal(signal.SIGTERM)
        wait_until(lambda: (c := stack.children().get("redis")) is not None and c.pid != old_redis.pid,
                   timeout=30, message="Redis restarted by the supervisor")
        wait_until(lambda: client.ping(), timeout=30, message="Redis answering again")
        wait_detections(len(OUTCOMES))
        wait_until(lambda: _settled(stack, client), timeout=90, message=f"settled (log: {stack.log_path})")
        wait_until(lambda: len(helix.markers) >= len(OUTCOMES), timeout=30, message="every marker")
        found = detections()
        done = {k.decode(): json.loads(v) for k, v in client.hgetall(keys.action_done("twitch-prediction")).items()}
    finally:
        stop_rc = stack.stop()
        client.close()
        shutil.rmtree(clip, ignore_errors=True)
    assert stop_rc == 0
    assert [e.outcome for e in found] == OUTCOMES

    # -- one prediction per match, ended with that match's outcome (a draw refunded). The first match
    #    may start before `owc actions` is up: then it has none (its record says so).
    by_id = {p.id: p for p in helix.predictions}
    predicted: list[str] = []
    twitch_log = "\n".join(line for line in stack.log().splitlines() if "twitch" in line)
    for i, e in enumerate(found):
        result = done[f"default/{e.id}"]
        assert result["status"] == "ok", (result, twitch_log)
        if i == 0 and result["result"] == "no prediction for this match":
            assert all(p.created * 1000 > e.ts for p in helix.predictions)
            continue
        pid = result["result"].split()[1]
        p = by_id[pid]
        predicted.append(pid)
        if e.outcome == "draw":
            assert (p.status, p.winning_outcome_id) == ("CANCELED", None)  # refunded
        else:
            assert p.status == "RESOLVED", (i, e, result, twitch_log)
            winner = next(o["title"] for o in p.outcomes if o["id"] == p.winning_outcome_id)
            assert winner == TITLES[str(e.outcome)], (i, e, result, twitch_log)
        # opened only after the previous result, once the counter re-armed (the cooldown is frame time:
        # at --speed 2, half of it in wall time, then the `none` frames)
        if i > 0:
            assert p.created * 1000 >= found[i - 1].ts + COOLDOWN_S * 1000 / 2 - 500, (p.created, found[i - 1].ts)
        assert p.created * 1000 < e.ts
    assert len(predicted) >= len(OUTCOMES) - 1 and len(set(predicted)) == len(predicted)
    # no second prediction for any match (the create lost at the kill was adopted): the ended ones and
    # at most one open for the next match
    others = [p for p in helix.predictions if p.id not in predicted]
    assert len(others) <= 1 and all(p.status in ("ACTIVE", "LOCKED") for p in others), others
    assert helix.count("PATCH", "/helix/predictions") == len(predicted)

    # -- one marker per result, in order
    assert [m["description"] for m in helix.markers] == [
        "VICTORY · 1–0", "DEFEAT · 1–1", "DRAW · 1–1–1", "VICTORY · 2–1–1"]

    # -- the token and its refresh token in no log line
    log = stack.log()
    assert "prediction" in log and "adopting it" in log
    assert token.access_token not in log and token.refresh_token not in log
