"""The one-place helpers: stream ids, bytes-or-str text, a channel from its event-log key, restart backoff."""

from __future__ import annotations

import pytest

from services.common.contracts.codec import text
from services.common.contracts.keys import Keys
from services.common.contracts.streamids import id_after, parse_id, parse_id_or
from services.runner.supervisor import RestartBackoff


def test_stream_ids_parse_order_and_step() -> None:
    assert parse_id(b"1700000000000-3") == parse_id("1700000000000-3") == (1700000000000, 3)
    assert sorted(["10-1", "9-5", "10-0"], key=parse_id) == ["9-5", "10-0", "10-1"]
    assert parse_id_or("test-abc", (0, 0)) == (0, 0) and parse_id_or("4-2", (0, 0)) == (4, 2)
    assert id_after(b"12-3") == "12-4" and id_after("12") == "12-1"
    with pytest.raises(ValueError, match="not an event id"):
        id_after("x-1")


def test_text_of_what_redis_returns() -> None:
    assert text(b"caf\xc3\xa9") == "café" and text("as is") == "as is" and text(7) == "7"
    assert text(b"\xff", "replace") == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        text(b"\xff")


def test_channel_of_is_the_inverse_of_events() -> None:
    keys = Keys("p1")
    assert keys.channel_of(keys.events("main")) == "main"
    with pytest.raises(ValueError, match="not an event log key"):
        keys.channel_of(Keys("p2").events("main"))


def test_detframe_seq_is_the_inverse_of_detframe() -> None:
    keys = Keys("p1")
    assert keys.detframe_seq("main", keys.detframe("main", 42).encode()) == 42
    assert keys.detframe_seq("main", keys.detframe("main", 42)) == 42
    assert keys.detframe_seq("main", keys.detframe("other", 42)) is None
    assert keys.detframe_seq("main", keys.detframe_pattern("main")) is None


def test_keys_keep_their_names() -> None:
    """The key table is a contract: data already in users' Redis lives under these names."""
    keys = Keys("p")
    assert (keys.frames, keys.labels, keys.commands, keys.channels, keys.inference_workers) == (
        "p:frames", "p:labels", "p:commands", "p:channels", "p:inference:workers")
    assert (keys.events("c"), keys.state("c"), keys.sessions("c"), keys.command_done("c"), keys.reply("r")) == (
        "p:events:c", "p:state:c", "p:sessions:c", "p:cmddone:c", "p:reply:r")
    assert (keys.action_done("a"), keys.action_status, keys.twitch_prediction("c"), keys.health("c", "state")) == (
        "p:actions:done:a", "p:actions:status", "p:twitch:prediction:c", "p:health:c:state")


def test_restart_backoff_doubles_up_to_its_ceiling_and_starts_over_after_a_stable_run() -> None:
    b = RestartBackoff(initial_s=0.5, max_s=3.0, stable_after_s=30.0)
    waits = [0.0]
    for _ in range(5):
        waits.append(b.next(waits[-1], ran=1.0))
    assert waits[1:] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert b.next(3.0, ran=30.0) == 0.5
