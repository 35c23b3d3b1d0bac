from __future__ import annotations

import re

import pytest

from services.common.contracts.keys import InvalidChannelError, Keys, validate_channel
from services.common.contracts.messages import (
    Command,
    Counts,
    Event,
    Frame,
    Label,
    MessageError,
    Reply,
    StateSnapshot,
)


def _bytes_fields(fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    # what redis-py hands back with decode_responses=False
    return {bytes(k): bytes(v) for k, v in fields.items()}


def test_frame_round_trip_keeps_binary_image() -> None:
    image = bytes(range(256)) * 4  # not UTF-8, includes NULs
    frame = Frame("default", 7, 1_700_000_000_000, "jpg", 640, 360, image)
    assert Frame.from_fields(_bytes_fields(frame.to_fields())) == frame


def test_label_round_trip() -> None:
    label = Label("ch-1", 3, 5, "victory", 0.97, {"none": 0.01, "victory": 0.97, "defeat": 0.01, "draw": 0.01},
                  "vc-abc", "host-1", 1.25)
    back = Label.from_fields(_bytes_fields(label.to_fields()))
    assert back == label and back.outcome == "victory"
    assert Label("c", 1, 1, "none", 1.0, {}, "", "", 0).outcome is None


def test_command_round_trip() -> None:
    cmd = Command("r1", "default", "set", counts=Counts(3, 2, 1), note="fix", issued_at=1, deadline=2)
    assert Command.from_fields(_bytes_fields(cmd.to_fields())) == cmd
    adj = Command("r2", "default", "adjust", outcome="draw", delta=-1)
    assert Command.from_fields(adj.to_fields()) == adj


def test_event_round_trip_with_id() -> None:
    ev = Event("detected", Counts(1, 0, 0), "s1", "auto", 10, outcome="victory", delta=1, confidence=0.99,
               frame_seq=42, captured_at=9)
    back = Event.from_fields(_bytes_fields(ev.to_fields()), id=b"1-0")
    assert back == ev and back.id == "1-0"
    assert back.as_dict()["victories"] == 1


def test_snapshot_and_reply_round_trip() -> None:
    snap = StateSnapshot(Counts(1, 2, 0), "s", 1, "cooldown", 99, "1-0", "defeat", 5, "defeat", 2,
                         ("victory", "defeat", "defeat"), 6)
    assert StateSnapshot.from_fields(_bytes_fields(snap.to_fields())) == snap
    reply = Reply("r", False, error="no", code="rejected")
    assert Reply.from_json(reply.to_json()) == reply


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({b"channel": b"c", b"seq": b"x"}, "frame: field 'seq': expected an integer, got 'x'"),
        ({b"seq": b"1"}, "frame: missing field 'channel'"),
        ({b"channel": b"c", b"seq": b"1", b"captured_at": b"1", b"format": b"gif", b"width": b"1",
          b"height": b"1", b"image": b""}, "frame: field 'format': 'gif' is not one of jpg, png"),
        ({b"v": b"2", b"channel": b"c"}, "schema version 2 is not supported"),
        ({b"channel": b"c", b"seq": b"-1"}, "must be >= 0"),
    ],
)
def test_malformed_frames_give_clear_errors(fields: dict[bytes, bytes], message: str) -> None:
    with pytest.raises(MessageError, match=message.replace("(", r"\(")):
        Frame.from_fields(fields)


def test_malformed_label_fields() -> None:
    good = Label("c", 1, 1, "none", 0.5, {}, "m", "w", 0).to_fields()
    with pytest.raises(MessageError, match="'probs': invalid JSON"):
        Label.from_fields({**good, b"probs": b"{"})
    with pytest.raises(MessageError, match=r"within 0\.\.1"):
        Label.from_fields({**good, b"confidence": b"1.5"})
    with pytest.raises(MessageError, match="finite"):
        Label.from_fields({**good, b"confidence": b"nan"})
    with pytest.raises(MessageError, match="'label': 'win' is not one of"):
        Label.from_fields({**good, b"label": b"win"})


def test_malformed_command_fields() -> None:
    good = Command("r", "c", "set", counts=Counts(1, 1, 1)).to_fields()
    with pytest.raises(MessageError, match="'counts': expected"):
        Command.from_fields({**good, b"counts": b'{"victories": 1}'})
    with pytest.raises(MessageError, match="'request_id' is empty"):
        Command.from_fields({**good, b"request_id": b""})
    with pytest.raises(MessageError, match="not valid UTF-8"):
        Command.from_fields({**good, b"note": b"\xff\xfe"})



@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        (b"by_mode", b"[]", "'by_mode': expected a JSON object of mode -> {victories, defeats, draws} integers"),
        (b"by_mode", b'{"comp": {"victories": 1}}', "'by_mode': mode 'comp': expected {victories, defeats, draws}"),
        (b"mode_runs", b"[]", "'mode_runs': expected a JSON object of mode -> {recent, streak}"),
        (b"mode_runs", b'{"comp": {"streak": 1}}', "'mode_runs': mode 'comp': expected {recent, streak}"),
        (b"mode_runs", b'{"comp": {"recent": "win", "streak": 0}}', "mode 'comp': 'win' is not an outcome"),
        (b"mode_runs", b'{"comp": {"recent": "", "streak": 2}}', "mode 'comp': a streak of 2 with last results"),
    ],
)
def test_malformed_per_mode_fields_say_which_mode(field: bytes, raw: bytes, message: str) -> None:
    good = StateSnapshot(Counts(1, 0, 0), "s", 1, "ready", 0, "1-0", "victory", 1, "victory", 1, ("victory",), 2,
                         by_mode={"comp": Counts(1, 0, 0)}).to_fields()
    assert StateSnapshot.from_fields(_bytes_fields(good)).by_mode == {"comp": Counts(1, 0, 0)}
    with pytest.raises(MessageError, match=re.escape(message)):
        StateSnapshot.from_fields({**_bytes_fields(good), field: raw})


def test_keys_layout_and_channel_names() -> None:
    k = Keys("owc")
    assert (k.frames, k.labels, k.commands) == ("owc:frames", "owc:labels", "owc:commands")
    assert k.events("default") == "owc:events:default"
    assert k.state("a") == "owc:state:a"
    assert k.health("a", "capture") == "owc:health:a:capture"
    assert k.detframe("a", 5) == "owc:detframe:a:5"
    assert Keys.dlq(k.frames) == "owc:frames:dlq"
    assert validate_channel("team-1_a") == "team-1_a"
    for bad in ("", "a:b", "a b", "-x", "x" * 65):
        with pytest.raises(InvalidChannelError):
            validate_channel(bad)
