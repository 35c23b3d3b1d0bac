"""Pure history helpers shared by the state service and the gateway."""

from __future__ import annotations

import csv
import io

import pytest

from services.common.contracts.export import to_csv, to_jsonl
from services.common.contracts.messages import Counts, Event, MessageError
from services.common.contracts.sessions import SessionSummary
from services.state.history import check_importable, fold_counts, parse_jsonl, summarize_sessions
from services.state.machine import apply_results, current_run, longest_run


def ev(type_: str, counts: Counts, ts: int, outcome: str | None = None, delta: int = 0, session: str = "s1",
       id: str = "") -> Event:
    return Event(type=type_, counts=counts, session=session, source="manual", ts=ts, outcome=outcome,  # type: ignore[arg-type]
                 delta=delta, id=id or f"{ts}-0", note="a, \"quoted\" note")


LOG = [
    ev("session_started", Counts(), 1, session="s1"),
    ev("detected", Counts(1, 0, 0), 2, "victory", 1),
    ev("detected", Counts(2, 0, 0), 3, "victory", 1),
    ev("adjusted", Counts(2, 1, 0), 4, "defeat", 1),
    ev("set", Counts(5, 1, 1), 5),
    ev("undone", Counts(2, 1, 0), 6),
    ev("session_started", Counts(), 7, session="s2"),
    ev("adjusted", Counts(0, 0, 2), 8, "draw", 2, session="s2"),
]


def test_results_helpers() -> None:
    assert apply_results("WLW", "victory", -1) == "WL"
    assert apply_results("WLW", "defeat", -1) == "WW"
    assert apply_results("W", "draw", 2) == "WDD"
    assert current_run("WLLL") == ("defeat", 3) and current_run("") == (None, 0)
    assert longest_run("WWLWWWL", "victory") == 3 and longest_run("WWLWWWL", "defeat") == 1


def test_fold_and_sessions() -> None:
    assert fold_counts(LOG) == Counts(0, 0, 2)
    s1, s2 = summarize_sessions(LOG)
    assert s1.session == "s1" and s1.counts == Counts(2, 1, 0) and (s1.started_at, s1.ended_at) == (1, 7)
    assert s1.events == 6 and s1.win_rate == pytest.approx(2 / 3)
    assert s2.ended_at is None and s2.counts == Counts(0, 0, 2)
    assert SessionSummary.from_json(s1.to_json()) == s1


def test_jsonl_round_trip_and_csv() -> None:
    assert parse_jsonl(to_jsonl(LOG)) == LOG
    assert [e.id for e in parse_jsonl(to_jsonl(LOG))] == [e.id for e in LOG]
    rows = list(csv.DictReader(io.StringIO(to_csv(LOG))))
    assert len(rows) == len(LOG) and rows[1]["outcome"] == "victory" and rows[1]["victories"] == "1"
    assert rows[0]["note"] == 'a, "quoted" note' and rows[0]["outcome"] == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "detected"\n', "line 1: invalid JSON"),
        ("[1]\n", "line 1: expected a JSON object"),
        ('\n{"type": "boom", "session": "s", "source": "auto", "ts": 1}\n', "line 2: unknown event type"),
        ('{"type": "set", "session": "s", "source": "auto", "ts": 1, "victories": -1, "defeats": 0, "draws": 0}',
         "line 1: "),
    ],
)
def test_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        parse_jsonl(text)


def test_check_importable() -> None:
    check_importable(LOG)
    with pytest.raises(MessageError, match="no events"):
        check_importable([])
    with pytest.raises(MessageError, match="first event must be a session_started"):
        check_importable(LOG[1:])
    tampered = [*LOG[:2], ev("detected", Counts(5, 0, 0), 3, "victory", 1)]
    with pytest.raises(MessageError, match="do not follow"):
        check_importable(tampered)
