"""The actions' records as `owc actions` and the admin page read them: names, sentences, parsing, the test letter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.common.config.settings import load_settings
from services.common.contracts.action_records import (
    ActionInfo,
    DeadLetter,
    LastDelivery,
    configured_actions,
    known_actions,
    make_test_letter,
    redacted_url,
    service_running,
)
from services.common.contracts.messages import Counts, Event, StateSnapshot


def actions_of(**flat: Any) -> list[tuple[str, str, str]]:
    settings = load_settings(overrides={f"actions.{k.replace('__', '.')}": v for k, v in flat.items()}).settings
    return [(a.name, a.kind, a.description) for a in configured_actions(settings.actions)]


def test_nothing_configured_is_no_action() -> None:
    assert actions_of() == []


def test_each_kind_of_action_says_what_it_does_without_secrets() -> None:
    got = actions_of(
        webhooks=[
            {"url": "https://example.com/hook?token=abc"},
            {"url": "https://discord.com/api/webhooks/1/SECRET", "name": "discord", "preset": "discord",
             "events": ["detected", "undone"]},
            {"url": "http://127.0.0.1:7474/DoAction", "name": "sb", "preset": "streamerbot",
             "streamerbot_action": "OW result", "channels": ["main"]},
        ],
        chat__enabled=True, chat__nick="MyBot", chat__twitch_channel="MyChannel",
        obs__replay_buffer=True, obs__chapters=True, obs__scene_victory="Sting", obs__scene_draw="Meh",
    )
    assert got == [
        ("webhook-1", "webhook", "Sends the result as JSON to https://example.com/… (every change of the counts)."),
        ("discord", "discord", "Posts a message in your Discord channel (only detected results, undos)."),
        ("sb", "streamerbot", "Runs the Streamer.bot action “OW result” (every change of the counts of main)."),
        ("chat", "chat", "Posts each result in Twitch chat (#mychannel) and answers !wl; moderators can use "
                         "!win, !loss, !draw and !undo."),
        ("obs-replay", "obs", "Saves OBS's replay buffer 5 s after each result."),
        ("obs-chapter", "obs", "Adds a chapter named after each result to the OBS recording."),
        ("obs-scene", "obs", "Shows a scene for 8 s: “Sting” after a victory; “Meh” after a draw."),
    ]
    assert "SECRET" not in json.dumps(got) and "token=abc" not in json.dumps(got)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://discord.com/api/webhooks/1/tok", "https://discord.com/…"),
    ("http://127.0.0.1:7474/DoAction", "http://127.0.0.1:7474/…"),
    ("https://user:pw@example.com/x", "https://example.com/…"),
])
def test_a_webhook_address_shows_only_scheme_and_host(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_actions_only_the_running_service_reports_come_after_the_configured_ones() -> None:
    configured = [ActionInfo("hook", "webhook", "…"), ActionInfo("chat", "chat", "…")]
    got = known_actions(configured, "chat,elsewhere,hook,,elsewhere")
    assert [(a.name, a.kind) for a in got] == [("hook", "webhook"), ("chat", "chat"), ("elsewhere", "other")]
    assert known_actions(configured, None) == configured


@pytest.mark.parametrize(("updated_at", "running"), [(None, False), (100_000, True), (91_000, True), (90_000, False)])
def test_the_service_is_running_while_its_record_is_fresh(updated_at: int | None, running: bool) -> None:
    assert service_running(updated_at, now_ms=100_000) is running


@pytest.mark.parametrize(("raw", "expected"), [
    (None, None),
    (b"not json", None),
    (b"[1, 2]", None),
    (b'{"status": "ok", "result": "HTTP 204", "at": 5, "event": "1-0", "channel": "default", "type": "detected",'
     b' "outcome": "victory", "test": false, "seconds": 0.1}',
     LastDelivery("ok", "HTTP 204", 5, "default", "1-0", "detected", "victory", False)),
    # written before the type was kept, with a bad time: still readable
    (b'{"status": "dead", "result": "HTTP 502", "at": "soon", "event": "2-0", "channel": "x", "test": true}',
     LastDelivery("dead", "HTTP 502", None, "x", "2-0", None, None, True)),
])
def test_a_last_delivery_record_is_read_leniently(raw: bytes | None, expected: LastDelivery | None) -> None:
    assert LastDelivery.from_json(raw) == expected


def test_a_dead_letter_is_read_with_its_event() -> None:
    raw = json.dumps({"action": "hook", "error": "HTTP 502", "at": 7, "attempts": 5, "channel": "default",
                      "id": "3-0", "fields": {"type": "detected", "outcome": "defeat"}, "test": False})
    assert DeadLetter.from_json(raw) == DeadLetter("hook", "HTTP 502", 7, "default", "3-0", "detected", "defeat",
                                                   False, 5)
    assert DeadLetter.from_json('{"fields": "garbage"}') == DeadLetter("", "", None, "", "", None, None, False, None)
    assert DeadLetter.from_json(b"\xff") is None


def test_the_test_letter_is_a_victory_on_top_of_the_channel_counts_marked_as_a_test() -> None:
    snap = StateSnapshot(counts=Counts(4, 2, 1), session="s9", session_started_at=1, phase="ready",
                         cooldown_until=None, last_event_id="9-0", last_outcome="draw", last_event_at=1,
                         streak_outcome="draw", streak=1, recent=("draw",), updated_at=1)
    event_id, raw = make_test_letter("hook", "main", snap, now_ms=1_700_000_000_000)
    letter = json.loads(raw)
    assert event_id == "test-1700000000000" == letter["id"]
    assert letter["action"] == "hook" and letter["channel"] == "main" and letter["test"] is True
    event = Event.from_fields(letter["fields"], id=letter["id"])
    assert (event.type, event.outcome, event.delta, event.counts, event.session) == (
        "detected", "victory", 1, Counts(5, 2, 1), "s9")
    _, fresh = make_test_letter("hook", "default", None, now_ms=1)
    assert Event.from_fields(json.loads(fresh)["fields"]).counts == Counts(1, 0, 0)
