"""The wire format of every message, pinned byte for byte.

The expected entries were produced by the hand-written encoders that the
field-table codec replaced; services of both versions share the streams and
old entries stay in Redis, so any change here is a protocol change (bump
``SCHEMA_VERSION``), never a refactoring detail. Field order is pinned too:
it is the order of the XADD arguments.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.common.contracts.messages import Command, Counts, Event, Frame, Label, ModeRun, Reply, StateSnapshot

Message = Frame | Label | Command | Event | StateSnapshot

CASES: list[tuple[Message, list[tuple[bytes, bytes]]]] = [
    (
        Frame("default", 7, 1_700_000_000_000, "png", 640, 360, b"\x89PNG\r\n\x1a\n\x00\xff"),
        [(b"v", b"1"), (b"channel", b"default"), (b"seq", b"7"), (b"captured_at", b"1700000000000"),
         (b"format", b"png"), (b"width", b"640"), (b"height", b"360"), (b"image", b"\x89PNG\r\n\x1a\n\x00\xff")],
    ),
    (
        Label("ch-1", 3, 1_700_000_000_123, "victory", 0.97,
              {"none": 0.01, "victory": 0.97, "defeat": 0.01, "draw": 0.01}, "vc-abc", "host-1", 1.25),
        [(b"v", b"1"), (b"channel", b"ch-1"), (b"seq", b"3"), (b"captured_at", b"1700000000123"),
         (b"label", b"victory"), (b"confidence", b"0.97"),
         (b"probs", b'{"none":0.01,"victory":0.97,"defeat":0.01,"draw":0.01}'), (b"model", b"vc-abc"),
         (b"worker", b"host-1"), (b"infer_ms", b"1.25"), (b"error", b""), (b"read", b""), (b"score", b"")],
    ),
    (
        Label("ch-1", 5, 6, "none", 0.7, {"none": 0.7, "victory": 0.0, "defeat": 0.3, "draw": 0.0}, "m", "w", 9.5,
              read="defeat", score=-2.2),
        [(b"v", b"1"), (b"channel", b"ch-1"), (b"seq", b"5"), (b"captured_at", b"6"), (b"label", b"none"),
         (b"confidence", b"0.7"), (b"probs", b'{"none":0.7,"victory":0.0,"defeat":0.3,"draw":0.0}'),
         (b"model", b"m"), (b"worker", b"w"), (b"infer_ms", b"9.5"), (b"error", b""), (b"read", b"defeat"),
         (b"score", b"-2.2")],
    ),
    (
        Label("ch-1", 4, 5, "error", 0.0, {}, "m", "w", 3, error="d\u00e9codage rat\u00e9"),
        [(b"v", b"1"), (b"channel", b"ch-1"), (b"seq", b"4"), (b"captured_at", b"5"), (b"label", b"error"),
         (b"confidence", b"0.0"), (b"probs", b"{}"), (b"model", b"m"), (b"worker", b"w"), (b"infer_ms", b"3.0"),
         (b"error", b"d\xc3\xa9codage rat\xc3\xa9"), (b"read", b""), (b"score", b"")],
    ),
    (
        Command("r1", "default", "set", counts=Counts(3, 2, 1), note="fix \u00e9", issued_at=1, deadline=2),
        [(b"v", b"1"), (b"request_id", b"r1"), (b"frame_seq", b""), (b"channel", b"default"), (b"type", b"set"),
         (b"outcome", b""), (b"delta", b""), (b"counts", b'{"victories": 3, "defeats": 2, "draws": 1}'),
         (b"note", b"fix \xc3\xa9"), (b"payload", b""), (b"issued_at", b"1"), (b"deadline", b"2"),
         (b"mode", b"")],
    ),
    (
        Command("r2", "team-a", "adjust", outcome="draw", delta=-1, frame_seq=42),
        [(b"v", b"1"), (b"request_id", b"r2"), (b"frame_seq", b"42"), (b"channel", b"team-a"), (b"type", b"adjust"),
         (b"outcome", b"draw"), (b"delta", b"-1"), (b"counts", b""), (b"note", b""), (b"payload", b""),
         (b"issued_at", b"0"), (b"deadline", b"0"), (b"mode", b"")],
    ),
    (
        Event("detected", Counts(1, 0, 0), "s1", "auto", 10, outcome="victory", delta=1, confidence=0.99,
              frame_seq=42, captured_at=9),
        [(b"v", b"1"), (b"type", b"detected"), (b"outcome", b"victory"), (b"delta", b"1"), (b"victories", b"1"),
         (b"defeats", b"0"), (b"draws", b"0"), (b"session", b"s1"), (b"source", b"auto"), (b"confidence", b"0.99"),
         (b"frame_seq", b"42"), (b"captured_at", b"9"), (b"request_id", b""), (b"note", b""), (b"undoes", b""),
         (b"ts", b"10"), (b"mode", b"")],
    ),
    (
        Event("undone", Counts(0, 2, 0), "s1", "manual", 11, request_id="r9", note="oops", undoes="5-0", id="6-0"),
        [(b"v", b"1"), (b"type", b"undone"), (b"outcome", b""), (b"delta", b"0"), (b"victories", b"0"),
         (b"defeats", b"2"), (b"draws", b"0"), (b"session", b"s1"), (b"source", b"manual"), (b"confidence", b""),
         (b"frame_seq", b""), (b"captured_at", b""), (b"request_id", b"r9"), (b"note", b"oops"), (b"undoes", b"5-0"),
         (b"ts", b"11"), (b"mode", b"")],
    ),
    (
        StateSnapshot(Counts(1, 2, 0), "s", 1, "cooldown", 99, "1-0", "defeat", 5, "defeat", 2,
                      ("victory", "defeat", "defeat"), 6),
        [(b"v", b"1"), (b"victories", b"1"), (b"defeats", b"2"), (b"draws", b"0"), (b"session", b"s"),
         (b"session_started_at", b"1"), (b"phase", b"cooldown"), (b"cooldown_until", b"99"),
         (b"last_event_id", b"1-0"), (b"last_outcome", b"defeat"), (b"last_event_at", b"5"),
         (b"streak_outcome", b"defeat"), (b"streak", b"2"), (b"recent", b"victory,defeat,defeat"),
         (b"updated_at", b"6"), (b"mode", b""), (b"by_mode", b"{}"), (b"mode_runs", b"{}")],
    ),
    (
        StateSnapshot(Counts(), "s0", 0, "ready", None, "", None, None, None, 0, (), 7),
        [(b"v", b"1"), (b"victories", b"0"), (b"defeats", b"0"), (b"draws", b"0"), (b"session", b"s0"),
         (b"session_started_at", b"0"), (b"phase", b"ready"), (b"cooldown_until", b""), (b"last_event_id", b""),
         (b"last_outcome", b""), (b"last_event_at", b""), (b"streak_outcome", b""), (b"streak", b"0"),
         (b"recent", b""), (b"updated_at", b"7"), (b"mode", b""), (b"by_mode", b"{}"), (b"mode_runs", b"{}")],
    ),
    # per-mode records (added later: stored last, read back as "" / {} from entries written before them)
    (
        Command("r3", "default", "mode", mode="Quick Play"),
        [(b"v", b"1"), (b"request_id", b"r3"), (b"frame_seq", b""), (b"channel", b"default"), (b"type", b"mode"),
         (b"outcome", b""), (b"delta", b""), (b"counts", b""), (b"note", b""), (b"payload", b""),
         (b"issued_at", b"0"), (b"deadline", b"0"), (b"mode", b"Quick Play")],
    ),
    (
        Event("mode_changed", Counts(1, 0, 0), "s1", "manual", 12, request_id="r3", mode="competitive", id="7-0"),
        [(b"v", b"1"), (b"type", b"mode_changed"), (b"outcome", b""), (b"delta", b"0"), (b"victories", b"1"),
         (b"defeats", b"0"), (b"draws", b"0"), (b"session", b"s1"), (b"source", b"manual"), (b"confidence", b""),
         (b"frame_seq", b""), (b"captured_at", b""), (b"request_id", b"r3"), (b"note", b""), (b"undoes", b""),
         (b"ts", b"12"), (b"mode", b"competitive")],
    ),
    (
        StateSnapshot(Counts(2, 1, 0), "s", 1, "ready", None, "2-0", "victory", 5, "victory", 1, (), 6,
                      mode="Mystery Heroes", by_mode={"": Counts(1, 1, 0), "Mystery Heroes": Counts(1, 0, 0)},
                      mode_runs={"": ModeRun(("defeat", "victory"), "victory", 1),
                                 "Mystery Heroes": ModeRun(("victory",), "victory", 1)}),
        [(b"v", b"1"), (b"victories", b"2"), (b"defeats", b"1"), (b"draws", b"0"), (b"session", b"s"),
         (b"session_started_at", b"1"), (b"phase", b"ready"), (b"cooldown_until", b""), (b"last_event_id", b"2-0"),
         (b"last_outcome", b"victory"), (b"last_event_at", b"5"), (b"streak_outcome", b"victory"), (b"streak", b"1"),
         (b"recent", b""), (b"updated_at", b"6"), (b"mode", b"Mystery Heroes"),
         (b"by_mode", b'{"":{"victories":1,"defeats":1,"draws":0},'
                      b'"Mystery Heroes":{"victories":1,"defeats":0,"draws":0}}'),
         (b"mode_runs", b'{"":{"recent":"defeat,victory","streak":1},'
                        b'"Mystery Heroes":{"recent":"victory","streak":1}}')],
    ),
]


def _ids(case: tuple[Message, Any]) -> str:
    return type(case[0]).__name__


@pytest.mark.parametrize(("message", "expected"), CASES, ids=[_ids(c) for c in CASES])
def test_encoded_fields_are_pinned(message: Message, expected: list[tuple[bytes, bytes]]) -> None:
    assert list(message.to_fields().items()) == expected


@pytest.mark.parametrize(("message", "expected"), CASES, ids=[_ids(c) for c in CASES])
def test_pinned_fields_read_back(message: Message, expected: list[tuple[bytes, bytes]]) -> None:
    fields = dict(expected)
    back = Event.from_fields(fields, id="6-0") if isinstance(message, Event) else type(message).from_fields(fields)
    assert back == message
    if not isinstance(message, Frame):  # text keys and values, as with decode_responses=True
        text = {k.decode(): v.decode() for k, v in expected}
        assert type(message).from_fields(text) == message


def test_missing_optional_fields_read_as_their_defaults() -> None:
    # entries written before these fields existed must still read back
    label = Label.from_fields({b"channel": b"c", b"seq": b"1", b"captured_at": b"2", b"label": b"none",
                               b"confidence": b"1.0"})
    assert (label.probs, label.model, label.worker, label.infer_ms, label.error) == ({}, "", "", 0.0, "")
    cmd = Command.from_fields({b"request_id": b"r", b"channel": b"c", b"type": b"undo"})
    assert cmd == Command("r", "c", "undo")
    snap = StateSnapshot.from_fields({b"victories": b"0", b"defeats": b"0", b"draws": b"0", b"session": b"s",
                                      b"phase": b"ready"})
    assert snap == StateSnapshot(Counts(), "s", 0, "ready", None, "", None, None, None, 0, (), 0)
    assert (cmd.mode, snap.mode, snap.by_mode, snap.mode_runs) == ("", "", {}, {})
    event = Event.from_fields({b"type": b"detected", b"victories": b"1", b"defeats": b"0", b"draws": b"0",
                               b"session": b"s", b"source": b"auto", b"ts": b"1", b"outcome": b"victory",
                               b"delta": b"1"})
    assert event.mode == ""


def test_reply_json_is_pinned() -> None:
    assert Reply("r", False, error="no", code="rejected").to_json() == (
        b'{"v": 1, "request_id": "r", "ok": false, "event_id": "", "error": "no", "code": "rejected"}'
    )
    assert Reply("r2", True, event_id="3-0").to_json() == (
        b'{"v": 1, "request_id": "r2", "ok": true, "event_id": "3-0", "error": "", "code": ""}'
    )
    assert Reply.from_json('{"request_id": "r", "ok": true}') == Reply("r", True)
