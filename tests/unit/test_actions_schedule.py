"""The lanes' pure timing rules: due times, queue order, which waiting result a correction takes back."""

from __future__ import annotations

import pytest

from services.actions.formatting import EventContext
from services.actions.schedule import Pending, correction_target, due_ms, event_time_ms, order
from services.common.contracts.messages import Counts, Event


def ctx(eid: str, type_: str, outcome: str | None, delta: int, ts: int, undoes: str = "", channel: str = "default",
        test: bool = False) -> EventContext:
    event = Event(type=type_, outcome=outcome, delta=delta, counts=Counts(), session="s",  # type: ignore[arg-type]
                  source="manual", ts=ts, undoes=undoes, id=eid)
    return EventContext(channel, event, test)


def waiting(c: EventContext, delay_ms: int = 30_000, force: bool = False) -> Pending:
    return Pending(c, event_time_ms(c) + delay_ms, force)


@pytest.mark.parametrize(("delayed", "delay_s", "expected"), [
    (True, 0, 1_000), (True, 30, 31_000), (True, 1.5, 2_500), (False, 30, 1_000),
])
def test_due_is_the_event_time_plus_the_delay_for_delayed_actions(delayed: bool, delay_s: float,
                                                                  expected: int) -> None:
    assert due_ms(ctx("1000-0", "detected", "victory", 1, 1_000), delayed, delay_s) == expected


def test_an_event_without_ts_is_timed_by_its_stream_id() -> None:
    assert event_time_ms(ctx("1234-5", "detected", "victory", 1, 0)) == 1234


def test_queue_order_is_the_logs_order_per_channel_tests_last() -> None:
    keys = ["default/10-0", "default/9-1", "default/9-0", "default/test-5", "alt/11-0"]
    assert sorted(keys, key=order) == ["alt/11-0", "default/9-0", "default/9-1", "default/10-0", "default/test-5"]


def test_a_pending_entry_round_trips_through_json() -> None:
    p = Pending(ctx("5-0", "undone", "victory", -1, 5, undoes="4-0", test=True), 35, force=True)
    again = Pending.from_json(p.to_json())
    assert again == p and again.key == "default/5-0"


VICTORY = ctx("1000-0", "detected", "victory", 1, 1_000)
MOD_WIN = ctx("1500-0", "adjusted", "victory", 1, 1_500)
DEFEAT = ctx("2000-0", "adjusted", "defeat", 1, 2_000)


@pytest.mark.parametrize(("correction", "queue", "expected"), [
    # an undo takes back the event it undoes, while it waits
    (ctx("6000-0", "undone", "victory", -1, 6_000, undoes="1000-0"), [VICTORY], "default/1000-0"),
    # ... not once it was sent (no longer queued)
    (ctx("6000-0", "undone", "victory", -1, 6_000, undoes="1000-0"), [DEFEAT], None),
    # ... not after its delay had passed (viewers saw it: the correction is said)
    (ctx("40000-0", "undone", "victory", -1, 40_000, undoes="1000-0"), [VICTORY], None),
    # a −1 by hand takes back the latest waiting +1 of that outcome
    (ctx("7000-0", "adjusted", "victory", -1, 7_000), [VICTORY, MOD_WIN, DEFEAT], "default/1500-0"),
    # ... of that outcome and size only
    (ctx("7000-0", "adjusted", "draw", -1, 7_000), [VICTORY, DEFEAT], None),
    (ctx("7000-0", "adjusted", "victory", -2, 7_000), [VICTORY], None),
    # ... of that channel only
    (ctx("7000-0", "adjusted", "victory", -1, 7_000, channel="alt"), [VICTORY], None),
    # a +1, a set or a new session takes nothing back
    (ctx("7000-0", "adjusted", "victory", 1, 7_000), [VICTORY], None),
    (ctx("7000-0", "set", None, 0, 7_000), [VICTORY], None),
    # a test event is never a correction
    (ctx("7000-0", "undone", "victory", -1, 7_000, undoes="1000-0", test=True), [VICTORY], None),
])
def test_which_waiting_result_a_correction_takes_back(correction: EventContext, queue: list[EventContext],
                                                      expected: str | None) -> None:
    assert correction_target(correction, [waiting(c) for c in queue]) == expected


def test_a_retry_asked_for_by_hand_is_never_taken_back() -> None:
    undo = ctx("6000-0", "undone", "victory", -1, 6_000, undoes="1000-0")
    assert correction_target(undo, [waiting(VICTORY, force=True)]) is None
