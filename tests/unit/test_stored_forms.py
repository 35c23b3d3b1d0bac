"""The JSON records already stored in users' Redis, in today's exact form: they must read, and write back the same.

``owc:state:{ch}`` field ``machine`` (a ``Machine`` with its undo stack), ``owc:sessions:{ch}`` (a
``SessionSummary``), ``owc:reply:*`` / ``owc:cmddone:{ch}`` (a ``Reply``) and
``owc:twitch:prediction:{ch}`` (a ``PredictionRecord``). The strings below were
written by the code of December 2026; a change that no longer reads them (or writes them differently)
is a contract change.
"""

from __future__ import annotations

import pytest

from services.common.contracts.messages import Counts, MessageError, Reply
from services.common.contracts.sessions import SessionSummary
from services.common.contracts.twitch_records import PredictionRecord, Resolution
from services.state.machine import Machine, UndoEntry

MACHINE = (
    '{"v":1,"session":"s-1","session_started_at":1700000000000,"session_events":4,'
    '"counts":{"victories":2,"defeats":1,"draws":0},"results":"WLW","phase":"cooldown","cooldown_until":1700000009000,'
    '"detected_at":1700000001000,"frames_outcome":null,"frames_len":0,"frames_last_at":null,"frames_min_conf":1.0,'
    '"none_run":0,"last_seq":41,"last_error_seq":12,"last_captured_at":1700000001000,'
    '"last_event_id":"1700000001000-0","last_event_at":1700000001005,"has_history":true,"undo":['
    '{"event_id":"1700000000500-0","type":"adjusted","outcome":"defeat","delta":1,'
    '"counts_before":{"victories":1,"defeats":0,"draws":0},"results_before":"","mode":"arcade",'
    '"mode_counts_before":{"victories":0,"defeats":0,"draws":0},"mode_results_before":""},'
    '{"event_id":"1700000001000-0","type":"set","outcome":null,"delta":0,'
    '"counts_before":{"victories":1,"defeats":1,"draws":0},"results_before":"WL","mode":"Comp \\u00e9",'
    '"mode_counts_before":{"victories":0,"defeats":1,"draws":0},"mode_results_before":"L"}],'
    '"updated_at":1700000001005,"mode":"Comp \\u00e9","by_mode":{"arcade":{"victories":0,"defeats":1,"draws":0},'
    '"Comp \\u00e9":{"victories":2,"defeats":0,"draws":0}},"mode_results":{"arcade":"L","Comp \\u00e9":"WW"},'
    '"frames_evidence":[1.5,-0.25]}'
)
MACHINE_VALUE = Machine(
    session="s-1", session_started_at=1700000000000, session_events=4, counts=Counts(2, 1, 0), results="WLW",
    phase="cooldown", cooldown_until=1700000009000, detected_at=1700000001000, last_seq=41, last_error_seq=12,
    last_captured_at=1700000001000, last_event_id="1700000001000-0", last_event_at=1700000001005, has_history=True,
    undo=(
        UndoEntry(event_id="1700000000500-0", type="adjusted", outcome="defeat", delta=1, counts_before=Counts(1, 0, 0),
                  mode="arcade"),
        UndoEntry(event_id="1700000001000-0", type="set", counts_before=Counts(1, 1, 0), results_before="WL",
                  mode="Comp é", mode_counts_before=Counts(0, 1, 0), mode_results_before="L"),
    ),
    updated_at=1700000001005, mode="Comp é", by_mode={"arcade": Counts(0, 1, 0), "Comp é": Counts(2, 0, 0)},
    mode_results={"arcade": "L", "Comp é": "WW"}, frames_evidence=(1.5, -0.25),
)

# the oldest form still in the wild: before modes, per-mode results, error seqs and banner evidence
MACHINE_BEFORE_MODES = (
    '{"v":1,"session":"s-0","session_started_at":5,"counts":{"victories":1,"defeats":0,"draws":0},"results":"W",'
    '"phase":"ready","cooldown_until":null,"frames_outcome":"defeat","frames_len":2,"frames_last_at":90,'
    '"frames_min_conf":0.93,"none_run":0,"last_seq":7,"last_captured_at":90,"last_event_id":"10-0",'
    '"last_event_at":10,"has_history":true,"undo":[{"event_id":"10-0","type":"detected","outcome":"victory",'
    '"delta":1,"counts_before":{"victories":0,"defeats":0,"draws":0}}]}'
)

SUMMARY = (
    b'{"session":"s-1","started_at":1700000000000,"ended_at":null,"victories":2,"defeats":1,"draws":0,"total":3,'
    b'"win_rate":0.6666666666666666,"longest_win_streak":2,"longest_loss_streak":1,"events":4,'
    b'"by_mode":{"Comp \\u00e9":{"victories":2,"defeats":1,"draws":0}}}'
)
SUMMARY_VALUE = SessionSummary("s-1", 1700000000000, None, Counts(2, 1, 0), 2, 1, 4, {"Comp é": Counts(2, 1, 0)})

REPLY = b'{"v": 1, "request_id": "r", "ok": false, "event_id": "", "error": "no", "code": "rejected"}'


def test_todays_machine_reads_and_writes_back_the_same() -> None:
    assert Machine.from_json(MACHINE) == MACHINE_VALUE
    assert Machine.from_json(MACHINE.encode()) == MACHINE_VALUE
    assert MACHINE_VALUE.to_json() == MACHINE


def test_a_machine_from_before_modes_reads() -> None:
    m = Machine.from_json(MACHINE_BEFORE_MODES)
    assert (m.session_events, m.last_error_seq, m.detected_at, m.updated_at, m.mode) == (0, -1, None, 0, "")
    assert m.by_mode == {"": Counts(1, 0, 0)} and m.mode_results == {"": "W"} and m.frames_evidence == ()
    assert (m.frames_outcome, m.frames_len, m.frames_min_conf) == ("defeat", 2, 0.93)
    # before modes everything was counted without one: that mode had all the counts
    assert m.undo == (UndoEntry(event_id="10-0", type="detected", outcome="victory", delta=1, counts_before=Counts()),)


@pytest.mark.parametrize("broken", [
    "{}", "[]", "not json", MACHINE.replace('"cooldown"', '"asleep"'), MACHINE.replace('"results":"WLW",', ""),
    MACHINE.replace('"mode_results":{"arcade":"L"', '"mode_results":{"arcade":"X"'),
    MACHINE.replace('"type":"set"', '"type":"bogus"'), MACHINE.replace('"event_id":"1700000000500-0",', ""),
    MACHINE.replace('"by_mode":{"arcade":{"victories":0,"defeats":1,"draws":0},', '"by_mode":[],"x":{'),
    MACHINE.replace('"v":1', '"v":2'),
])
def test_a_broken_machine_is_a_message_error(broken: str) -> None:
    """The state service rebuilds the channel from its log on a MessageError (never a fresh machine)."""
    with pytest.raises(MessageError, match="state machine snapshot"):
        Machine.from_json(broken)


def test_todays_session_summary_reads_and_writes_back_the_same() -> None:
    assert SessionSummary.from_json(SUMMARY) == SUMMARY_VALUE
    assert SUMMARY_VALUE.to_json() == SUMMARY
    oldest = b'{"session":"s","started_at":1,"ended_at":9,"victories":1,"defeats":0,"draws":0}'
    assert SessionSummary.from_json(oldest) == SessionSummary("s", 1, 9, Counts(1, 0, 0), 0, 0, 0, {})
    with pytest.raises(MessageError, match="session summary"):
        SessionSummary.from_json(b'{"session":"s","started_at":1}')


def test_todays_reply_reads_and_writes_back_the_same() -> None:
    assert Reply.from_json(REPLY) == Reply("r", False, error="no", code="rejected")
    assert Reply("r", False, error="no", code="rejected").to_json() == REPLY
    assert Reply.from_json('{"request_id": "r", "ok": true}') == Reply("r", True)
    with pytest.raises(MessageError, match="reply"):
        Reply.from_json('{"ok": true}')


PREDICTION = (
    '{"channel": "default", "after": "1700000000000-0", "status": "open", "title": "Win the next match?", '
    '"window_s": 120, "opened_at": 1700000000500, "id": "pid", "outcomes": {"victory": "o1", "defeat": "o2"}, '
    '"event": "", "result": "", "winner": "", "updated_at": 1700000000600, "by": "chat: Zo\\u00eb", '
    '"resolved": [{"event": "1699999999000-0", "id": "old", "title": "Win?", "status": "resolved", '
    '"winner": "Yes", "result": "victory", "noted": true}]}'
)
PREDICTION_VALUE = PredictionRecord(
    "default", "1700000000000-0", "open", "Win the next match?", 120, 1700000000500, id="pid",
    outcomes={"victory": "o1", "defeat": "o2"}, updated_at=1700000000600, by="chat: Zoë",
    resolved=(Resolution("1699999999000-0", "old", "Win?", "resolved", winner="Yes", result="victory", noted=True),),
)


def test_todays_prediction_record_reads_and_writes_back_the_same() -> None:
    assert PredictionRecord.from_json(PREDICTION) == PREDICTION_VALUE
    assert PREDICTION_VALUE.to_json() == PREDICTION
    # from before the undo notes: no ``resolved``; a key a newer writer added is passed over
    older = '{"channel": "c", "after": "", "status": "resolved", "title": "t", "window_s": 60, "opened_at": 1, "x": 2}'
    assert PredictionRecord.from_json(older) == PredictionRecord("c", "", "resolved", "t", 60, 1)
    for unreadable in ('{"channel": "c"}', "[]", "not json", b"\xff"):
        assert PredictionRecord.from_json(unreadable) is None  # lenient: no record
