"""The capture slot schedule and its burst bound (pure): a burst is the next slot taken early, never an extra one."""

from __future__ import annotations

import random

import pytest

from services.capture.schedule import BURST_MIN_GAP_S, SlotSchedule, burst_wanted

STEP = 0.25  # the default interval


def test_regular_slots_are_drift_free() -> None:
    s = SlotSchedule.starting(100.0, STEP)
    times = []
    for _ in range(5):
        times.append(s.due())
        assert s.taken(s.due(), s.due() + 0.04) == 0  # a 40 ms screenshot
    assert times == pytest.approx([100.0, 100.25, 100.5, 100.75, 101.0])


def test_a_burst_takes_the_next_slot_now_and_the_one_after_keeps_its_time() -> None:
    s = SlotSchedule.starting(0.0, STEP)
    s.taken(0.0, 0.04)  # slot 0 at 0.0: a candidate
    s.ask_burst()
    # slot 1 may be taken at once (its hint comes at ~0.06), yet not within BURST_MIN_GAP_S of slot 0
    assert s.due() == pytest.approx(BURST_MIN_GAP_S)
    s.taken(0.06, 0.10)
    assert not s.burst
    assert s.due() == pytest.approx(0.5)  # slot 2 at its usual time: no extra frame


def test_a_second_burst_waits_for_the_previous_slot_s_time() -> None:
    s = SlotSchedule.starting(0.0, STEP)
    s.taken(0.0, 0.01)
    s.ask_burst()
    s.taken(0.06, 0.07)  # slot 1 pulled to 0.06
    s.ask_burst()  # slot 1 was a candidate too
    assert s.due() == pytest.approx(0.25)  # slot 2 not before slot 1's own time
    s.taken(0.25, 0.26)
    assert s.due() == pytest.approx(0.75)


def test_a_burst_never_comes_later_than_the_regular_slot() -> None:
    s = SlotSchedule(STEP, next_due=1.0, last_taken=0.98, min_gap=0.5)
    s.ask_burst()
    assert s.due() == pytest.approx(1.0)


def test_overrun_slots_are_skipped_not_queued() -> None:
    s = SlotSchedule.starting(0.0, STEP)
    assert s.taken(0.0, 0.6) == 2  # a 600 ms screenshot overran slots 1 and 2
    assert s.due() == pytest.approx(0.75)
    assert s.taken(0.75, 0.8, wait_after=2.0) == 0  # a backoff the source asks for
    assert s.due() == pytest.approx(2.75)


def test_a_hint_about_an_older_frame_asks_for_nothing() -> None:
    assert burst_wanted(7, 7)
    assert burst_wanted(7, None)  # nothing taken yet by this capture
    assert not burst_wanted(6, 7)  # frame 7 was taken after the candidate 6: it is the confirmation


def simulate(hint_probability: float, seconds: float, seed: int) -> tuple[list[float], list[float]]:
    """A capture loop with hints arriving 10-120 ms after some frames; (every take, the burst takes)."""
    rng = random.Random(seed)
    s = SlotSchedule.starting(0.0, STEP)
    takes: list[float] = []
    bursts: list[float] = []
    now = 0.0
    pending_hint: float | None = None
    while now < seconds:
        due = s.due()
        if pending_hint is not None and pending_hint < due and not s.burst:
            now = max(now, pending_hint)
            pending_hint = None
            s.ask_burst()
            continue
        now = max(now, s.due())
        if s.burst:
            bursts.append(now)
        takes.append(now)
        took = rng.uniform(0.005, 0.09)
        s.taken(now, now + took)
        now += took
        if rng.random() < hint_probability:
            pending_hint = now + rng.uniform(0.01, 0.12)
    return takes, bursts


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_never_more_frames_than_the_regular_rate_over_a_minute(p: float) -> None:
    takes, bursts = simulate(p, 600.0, seed=int(p * 10))
    for i, start in enumerate(takes):
        window = [t for t in takes[i:] if t < start + 60.0]
        assert len(window) <= 60.0 / STEP + 2
    # a few bursts a second at most: they are frames, bounded like every frame
    for i, start in enumerate(bursts):
        assert len([t for t in bursts[i:] if t < start + 1.0]) <= 1.0 / STEP + 2
    if p == 1.0:
        assert len(bursts) > 500  # the hints were honoured, and each one cost no extra frame
    assert len(takes) <= 600.0 / STEP + 2


def test_with_every_frame_a_candidate_the_confirmation_comes_at_once() -> None:
    takes, bursts = simulate(1.0, 2.0, seed=3)
    assert BURST_MIN_GAP_S <= takes[1] - takes[0] < 0.25  # the second frame did not wait for the next slot
    assert bursts and bursts[0] == takes[1]
