"""The actions' pure decisions: which events, what chat says, webhook bodies and signatures, chat commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.actions.formatting import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Cooldown,
    EventContext,
    applies,
    encode_body,
    event_text,
    is_moderator,
    may_run,
    parse_chat_command,
    record_text,
    retryable_status,
    sign,
    tags_dict,
    verify,
    webhook_headers,
    webhook_payload,
)
from services.common.config.settings import ConfigError, load_settings
from services.common.contracts.messages import Counts, Event


def ev(type_: str, outcome: str | None = None, delta: int = 0, counts: tuple[int, int, int] = (5, 3, 1),
       source: str = "manual", id: str = "1700000000000-0") -> Event:
    return Event(type=type_, outcome=outcome, delta=delta, counts=Counts(*counts), session="s1",  # type: ignore[arg-type]
                 source=source, ts=1_700_000_000_000, id=id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((0, 0, 0), "today 0W 0L 0D"),
        ((5, 3, 1), "today 5W 3L 1D, 56%"),  # the overlay's rate: draws count as matches
        ((5, 3, 0), "today 5W 3L 0D, 63%"),  # 62.5 rounds half up
        ((1, 0, 0), "today 1W 0L 0D, 100%"),
        ((0, 2, 0), "today 0W 2L 0D, 0%"),
        ((1, 1, 1), "today 1W 1L 1D, 33%"),
        ((2, 1, 0), "today 2W 1L 0D, 67%"),
    ],
)
def test_record_text(counts: tuple[int, int, int], expected: str) -> None:
    assert record_text(Counts(*counts)) == expected


@pytest.mark.parametrize(
    ("event", "test", "expected"),
    [
        (ev("detected", "victory", 1, source="auto"), False, "VICTORY! today 5W 3L 1D, 56%"),
        (ev("detected", "defeat", 1, source="auto"), False, "DEFEAT. today 5W 3L 1D, 56%"),
        (ev("detected", "draw", 1, source="auto"), False, "DRAW. today 5W 3L 1D, 56%"),
        (ev("adjusted", "victory", 1), False, "VICTORY! today 5W 3L 1D, 56%"),
        (ev("adjusted", "defeat", 2), False, "DEFEAT. (+2) today 5W 3L 1D, 56%"),
        (ev("adjusted", "victory", -1), False, "correction: 1 victory removed. today 5W 3L 1D, 56%"),
        (ev("adjusted", "draw", -2), False, "correction: 2 draws removed. today 5W 3L 1D, 56%"),
        # an undone detection is never silent
        (ev("undone", "victory", -1), False, "correction: that was not a victory. today 5W 3L 1D, 56%"),
        (ev("undone", "defeat", -1), False, "correction: that was not a defeat. today 5W 3L 1D, 56%"),
        (ev("undone", "victory", 1), False, "correction: the victory is back. today 5W 3L 1D, 56%"),
        (ev("undone"), False, "correction: the previous counts are back. today 5W 3L 1D, 56%"),
        (ev("set"), False, "counts set: today 5W 3L 1D, 56%"),
        (ev("session_started", counts=(0, 0, 0)), False, "new session: today 0W 0L 0D"),
        (ev("imported"), False, None),
        (ev("adjusted", "victory", 0), False, None),
        (ev("detected", "victory", 1), True, "[test] VICTORY! today 5W 3L 1D, 56%"),
    ],
)
def test_event_text(event: Event, test: bool, expected: str | None) -> None:
    assert event_text(event, test) == expected


@pytest.mark.parametrize(
    ("event_type", "channel", "events", "channels", "expected"),
    [
        ("detected", "default", ["detected", "undone"], [], True),
        ("adjusted", "default", ["detected", "undone"], [], False),
        ("detected", "main", ["detected"], ["main", "alt"], True),
        ("detected", "other", ["detected"], ["main", "alt"], False),
        ("imported", "default", ["detected", "adjusted", "set", "undone", "session_started"], [], False),
    ],
)
def test_applies(event_type: str, channel: str, events: list[str], channels: list[str], expected: bool) -> None:
    assert applies(event_type, channel, events, channels) is expected


CTX = EventContext("main", ev("detected", "victory", 1, source="auto", id="1700000000123-4"))


def test_json_payload_is_the_event_with_its_key() -> None:
    body = webhook_payload(CTX, "json")
    assert body is not None
    assert body["idempotency_key"] == "main/1700000000123-4"
    assert body["channel"] == "main" and body["test"] is False
    assert body["text"] == "VICTORY! today 5W 3L 1D, 56%"
    assert body["event"]["id"] == "1700000000123-4"
    assert body["event"]["type"] == "detected" and body["event"]["victories"] == 5


@pytest.mark.parametrize(
    ("preset", "event", "expected"),
    [
        ("discord", ev("detected", "victory", 1), {"content": "VICTORY! today 5W 3L 1D, 56%",
                                                    "allowed_mentions": {"parse": []}}),
        ("discord", ev("undone", "victory", -1), {"content": "correction: that was not a victory. "
                                                   "today 5W 3L 1D, 56%", "allowed_mentions": {"parse": []}}),
        ("discord", ev("imported"), None),
    ],
)
def test_discord_payload(preset: Any, event: Event, expected: dict[str, Any] | None) -> None:
    assert webhook_payload(EventContext("main", event), preset) == expected


def test_streamerbot_payload_runs_the_named_action_with_args() -> None:
    body = webhook_payload(CTX, "streamerbot", "OW result")
    assert body is not None
    assert body["action"] == {"name": "OW result"}
    args = body["args"]
    assert args["owcOutcome"] == "victory" and args["owcType"] == "detected"
    assert (args["owcVictories"], args["owcDefeats"], args["owcDraws"], args["owcWinRate"]) == (5, 3, 1, 56)
    assert args["owcText"] == "VICTORY! today 5W 3L 1D, 56%"
    assert args["owcIdempotencyKey"] == "main/1700000000123-4"


def test_body_is_stable_across_retries() -> None:
    a = encode_body(webhook_payload(CTX, "json") or {})
    b = encode_body(webhook_payload(EventContext("main", ev("detected", "victory", 1, source="auto",
                                                             id="1700000000123-4")), "json") or {})
    assert a == b
    assert json.loads(a)["event"]["id"] == "1700000000123-4"


@pytest.mark.parametrize(
    ("secret", "body", "expected"),
    [
        # reference values from Python's hmac module written out, so a changed scheme fails
        ("s3cret", b'{"a":1}', "sha256=" + __import__("hmac").new(b"s3cret", b'{"a":1}', "sha256").hexdigest()),
        ("", b"", "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"),
    ],
)
def test_sign(secret: str, body: bytes, expected: str) -> None:
    assert sign(secret, body) == expected
    assert verify(secret, body, expected)
    assert not verify(secret + "x", body, expected)


def test_headers_carry_key_and_signature_only_with_a_secret() -> None:
    body = b"{}"
    plain = webhook_headers(CTX, body, None)
    assert plain[IDEMPOTENCY_HEADER] == "main/1700000000123-4"
    assert SIGNATURE_HEADER not in plain and "X-OWC-Test" not in plain
    signed = webhook_headers(EventContext("main", CTX.event, test=True), body, "k")
    assert signed[SIGNATURE_HEADER] == sign("k", body)
    assert signed["X-OWC-Test"] == "1"


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (502, True), (503, True), (429, True), (408, True), (400, False), (401, False),
     (404, False), (410, False), (422, False)],
)
def test_retryable_status(status: int, retry: bool) -> None:
    assert retryable_status(status) is retry


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("!wl", "record"), ("!record", "record"), ("!WL please", "record"), ("  !win", "win"),
        ("!loss", "loss"), ("!draw", "draw"), ("!undo", "undo"), ("win", None), ("!wins", None),
        ("", None), ("hello !wl", None),
    ],
)
def test_parse_chat_command(text: str, command: str | None) -> None:
    assert parse_chat_command(text) == command


@pytest.mark.parametrize(
    ("tags", "moderator"),
    [
        ({"badges": "broadcaster/1,subscriber/0"}, True),
        ({"badges": "moderator/1"}, True),
        ({"badges": "subscriber/12,premium/1"}, False),
        ({"badges": "vip/1"}, False),
        ({"badges": ""}, False),
        ({}, False),
        ({"mod": "1", "badges": ""}, True),
        ({"mod": "0", "badges": "subscriber/3"}, False),
        ({"+badges": "broadcaster/1"}, False),  # a client-only tag is the user's own claim: never trusted
        ({"badges": "moderatorx/1"}, False),
    ],
)
def test_is_moderator(tags: dict[str, str], moderator: bool) -> None:
    assert is_moderator(tags) is moderator


@pytest.mark.parametrize(
    ("command", "tags", "allowed"),
    [
        ("record", {}, True),
        ("win", {}, False),
        ("undo", {"badges": "subscriber/1"}, False),
        ("win", {"badges": "moderator/1"}, True),
        ("undo", {"badges": "broadcaster/1"}, True),
    ],
)
def test_may_run(command: Any, tags: dict[str, str], allowed: bool) -> None:
    assert may_run(command, tags) is allowed


def test_tags_dict_accepts_the_irc_library_form() -> None:
    raw = [{"key": "badges", "value": "moderator/1"}, {"key": "display-name", "value": "Mod"},
           {"key": "emotes", "value": None}]
    assert tags_dict(raw) == {"badges": "moderator/1", "display-name": "Mod", "emotes": ""}
    assert tags_dict(None) == {}


def test_cooldown() -> None:
    c = Cooldown(10)
    assert [c.allow(t) for t in (0, 1, 9.9, 10, 15, 20.5)] == [True, False, False, True, False, True]
    assert Cooldown(0).allow(5) and Cooldown(0).allow(5)


@pytest.mark.parametrize(
    ("webhooks", "error"),
    [
        ([{"url": "ftp://x.example/hook"}], "http"),
        ([{"url": "https://a.example/1", "name": "a"}, {"url": "https://b.example/2", "name": "a"}], "unique"),
        ([{"url": "http://127.0.0.1:7474/DoAction", "preset": "streamerbot"}], "streamerbot_action"),
        ([{"url": "https://a.example/1", "events": ["detected", "exploded"]}], "exploded"),
    ],
)
def test_webhook_settings_errors(webhooks: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_settings(overrides={"actions.webhooks": webhooks})


def test_webhook_settings_defaults_and_names() -> None:
    s = load_settings(overrides={"actions.webhooks": [{"url": "https://a.example/1"},
                                                      {"url": "https://b.example/2", "preset": "discord"}]}).settings
    first, second = s.actions.webhooks
    assert (first.name, second.name) == ("webhook-1", "webhook-2")
    assert first.preset == "json" and first.events == ["detected", "adjusted", "set", "undone", "session_started"]
    assert "b.example" not in repr(second)  # the URL is a secret (Discord's carry the token)
