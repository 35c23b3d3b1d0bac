"""The Twitch actions' pure decisions: results, which match a prediction covers, how it ends, when
one opens, marker texts, the settings' limits (Twitch's own), and the token file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.actions.twitch import rules
from services.actions.twitch.helix import Prediction
from services.actions.twitch.tokens import Token, load_token, save_token
from services.common.config.sections_twitch import TwitchSettings
from services.common.contracts.messages import Counts, Event
from services.common.contracts.twitch_records import PredictionRecord, Resolution, TwitchStatus


def ev(type_: str, outcome: str | None = None, delta: int = 0, eid: str = "200-0", mode: str = "",
       counts: tuple[int, int, int] = (0, 0, 0)) -> Event:
    return Event(type=type_, outcome=outcome, delta=delta, counts=Counts(*counts), session="s",  # type: ignore[arg-type]
                 source="auto", ts=0, mode=mode, id=eid)


def rec(status: str = "open", after: str = "100-0", **kw: Any) -> PredictionRecord:
    return PredictionRecord("default", after, status, "t", 120, 1_000, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("event", "expected"), [
    (ev("detected", "victory", 1), True),
    (ev("adjusted", "defeat", 1), True),
    (ev("adjusted", "defeat", -1), False),
    (ev("undone", "victory", -1), False),
    (ev("set"), False),
    (ev("session_started"), False),
])
def test_what_counts_as_a_result(event: Event, expected: bool) -> None:
    assert rules.is_result(event) is expected


@pytest.mark.parametrize(("record", "eid", "expected"), [
    (rec("open", "100-0"), "100-1", True),
    (rec("locked", "100-0"), "101-0", True),
    (rec("opening", "100-0"), "101-0", True),
    (rec("open", "100-0"), "100-0", False),  # the event it opened after: the previous match
    (rec("open", "100-5"), "99-9", False),   # an earlier match's result (a redelivery)
    (rec("open", "100-5"), "100-10", True),  # sequence numbers compare as numbers
    (rec("resolved", "100-0"), "101-0", False),
    (rec("cancelled", "100-0"), "101-0", False),
    (rec("open", ""), "1-0", True),
])
def test_a_prediction_covers_only_the_next_result(record: PredictionRecord, eid: str, expected: bool) -> None:
    assert rules.covers(record, ev("detected", "victory", 1, eid)) is expected


IDS = {"victory": "v", "defeat": "d"}


@pytest.mark.parametrize(("outcome", "settings", "ids", "expected"), [
    ("victory", {}, IDS, ("RESOLVED", "v")),
    ("defeat", {}, IDS, ("RESOLVED", "d")),
    ("draw", {}, IDS, ("CANCELED", None)),
    ("draw", {"outcome_draw": "Draw"}, {**IDS, "draw": "x"}, ("CANCELED", None)),  # cancel is the default
    ("draw", {"outcome_draw": "Draw", "draw": "resolve"}, {**IDS, "draw": "x"}, ("RESOLVED", "x")),
    ("victory", {}, {}, ("CANCELED", None)),  # an adopted prediction without our outcomes: refund
])
def test_how_a_prediction_ends(outcome: str, settings: dict[str, Any], ids: dict[str, str],
                               expected: tuple[str, str | None]) -> None:
    assert rules.ending(outcome, TwitchSettings(**settings), ids) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("record", "phase", "last", "expected"), [
    (None, "ready", "", True),
    (None, "cooldown", "", False),
    (None, "waiting_for_none", "5-0", False),
    (rec("open", "5-0"), "ready", "6-0", False),  # one at a time
    (rec("resolved", "5-0"), "ready", "6-0", True),  # the next match
    (rec("cancelled", "6-0"), "ready", "6-0", False),  # timed out for this match: not again
    (rec("failed", "6-0"), "ready", "6-0", False),
    (rec("failed", "6-0"), "ready", "7-0", True),
])
def test_when_a_prediction_opens(record: PredictionRecord | None, phase: str, last: str, expected: bool) -> None:
    assert rules.should_open(record, phase, last) is expected


@pytest.mark.parametrize(("event", "text"), [
    (ev("detected", "victory", 1, mode="competitive", counts=(12, 8, 0)), "VICTORY · Competitive · 12–8"),
    (ev("detected", "defeat", 1, counts=(3, 4, 1)), "DEFEAT · 3–4–1"),
    (ev("adjusted", "draw", 1, mode="quickplay", counts=(0, 0, 1)), "DRAW · Quick Play · 0–0–1"),
])
def test_marker_texts(event: Event, text: str) -> None:
    assert rules.marker_description(event) == text


def test_the_settings_keep_to_twitchs_limits() -> None:
    for bad in ({"title": "x" * 46}, {"window_s": 29}, {"window_s": 1801}, {"outcome_victory": "v" * 26},
                {"draw": "resolve"}, {"outcome_victory": "Same", "outcome_defeat": "Same"},
                {"helix_url": "ftp://x"}):
        with pytest.raises(ValidationError):
            TwitchSettings(**bad)
    assert TwitchSettings(window_s=30).window_s == 30 and TwitchSettings(window_s=1800).window_s == 1800


def test_adopting_only_our_own_recent_prediction() -> None:
    s = TwitchSettings()
    mine = Prediction("p", s.title, "ACTIVE", {"Victory": "a", "Defeat": "b"}, "2026-12-06T06:00:00.123456789Z", None)
    opening = PredictionRecord("default", "", "opening", s.title, 120, 1796536800000)  # 06:00:00 UTC
    assert rules.is_ours(mine, opening, s)
    old = PredictionRecord("default", "", "opening", s.title, 120, 1796536800000 + 60_000)
    assert not rules.is_ours(mine, old, s)  # created a minute before our request: a stale one
    other = Prediction("q", "Who wins?", "ACTIVE", {"me": "a", "you": "b"}, "2026-12-06T06:00:00Z", None)
    assert not rules.is_ours(other, opening, s)


def ended(event: str, status: str = "resolved", **kw: Any) -> Resolution:
    return Resolution(event, f"p-{event}", "t", status, **kw)


def test_an_undo_after_a_resolution_explains_what_twitch_cannot_do() -> None:
    text = rules.undo_notice(ended("1-0", winner="Victory"))
    assert "cannot un-resolve" in text and "“Victory”" in text and "!predict" in text
    assert "got their points back" in rules.undo_notice(ended("1-0", "cancelled"))


def test_an_undo_finds_the_result_that_ended_an_earlier_prediction_and_is_noted_once() -> None:
    history: tuple[Resolution, ...] = ()
    for i in range(1, 8):
        history = rules.remember(history, ended(f"{i}-0"), keep=5)
    assert [r.event for r in history] == ["3-0", "4-0", "5-0", "6-0", "7-0"]  # bounded, newest last
    # the next match's prediction is open by now: the undo still finds the one its result ended
    found = rules.to_note(history, "6-0")
    assert found is not None and found.id == "p-6-0"
    history = rules.noted(history, "6-0")
    assert rules.to_note(history, "6-0") is None  # said once
    assert rules.to_note(history, "2-0") is None and rules.to_note(history, "") is None
    # a redelivered result replaces its own entry and keeps that its undo was said
    again = rules.remember(history, ended("6-0", winner="Victory"))
    assert [r.event for r in again][-1] == "6-0" and len(again) == 5 and again[-1].noted
    r = rec("open", "7-0", resolved=history)
    assert PredictionRecord.from_json(r.to_json()) == r


def test_records_read_leniently() -> None:
    r = rec("open", "1-0", id="p1", outcomes={"victory": "a"})
    assert PredictionRecord.from_json(r.to_json()) == r
    assert PredictionRecord.from_json(b"not json") is None and PredictionRecord.from_json(None) is None
    assert r.shown_status(1_000 + 119_999) == "open" and r.shown_status(1_000 + 120_000) == "locked"
    s = TwitchStatus.from_fields({b"token": b"scopes", b"login": b"me", b"updated_at": b"x"})
    assert s.token == "scopes" and not s.token_ok and s.updated_at == 0


def test_the_token_file_is_private_and_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "data" / "t.json"
    token = Token("ACCESS-SECRET", "REFRESH-SECRET", 123.0, ("a", "b"), "cid", "1", "me")
    os.umask(0o022)
    save_token(path, token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(path) == token
    assert "SECRET" not in repr(token) and "SECRET" not in str(token)
    assert load_token(tmp_path / "missing.json") is None
