"""The counting rules (DESIGN §3), table first."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from services.common.contracts.messages import Command, Counts, Event, Label
from services.state.fold import fold
from services.state.history import fold_counts
from services.state.machine import Machine
from services.state.rules import (
    CommandInput,
    Input,
    LabelInput,
    Rejected,
    Rules,
    next_event_id,
    transition,
)

RULES = Rules(min_confidence=0.9, required_consecutive=2, max_gap_ms=2000, cooldown_ms=10_000, required_none=3)
NOW = 1_800_000_000_000


def lab(name: str, t: int, conf: float = 0.99, seq: int | None = None) -> tuple[str, str, int, float, int | None]:
    return ("L", name, t, conf, seq)


def cmd(type_: str, **kw: Any) -> tuple[str, str, dict[str, Any]]:
    return ("C", type_, kw)


@dataclass
class Run:
    machine: Machine
    events: list[Event] = field(default_factory=list)
    per_step: list[list[Event]] = field(default_factory=list)

    @property
    def detections(self) -> list[str]:
        return [e.outcome or "" for e in self.events if e.type == "detected"]


def run(steps: list[Any], rules: Rules = RULES, machine: Machine | None = None) -> Run:
    m = machine or Machine()
    r = Run(m)
    seq = max(m.last_seq, 0)
    for i, step in enumerate(steps):
        inp: Input
        if step[0] == "L":
            _, name, t, conf, explicit = step
            seq = explicit if explicit is not None else seq + 1
            inp = LabelInput(Label("default", seq, t, name, conf, {}, "m", "w", 1.0), now=NOW + i)
        else:
            _, type_, kw = step
            kw = dict(kw)
            kw.setdefault("request_id", f"r{i}")
            inp = CommandInput(Command(channel="default", type=type_, **kw), now=NOW + i)
        m, evs = transition(m, inp, rules)
        r.events += evs
        r.per_step.append(evs)
    r.machine = m
    return r


# ----------------------------------------------------------------------------- labels, table first

V, D, R, N, E = "victory", "defeat", "draw", "none", "error"

LABEL_CASES: list[tuple[str, list[Any], Rules, list[str], str]] = [
    # (name, steps, rules, detected outcomes, final phase)
    ("two equal outcomes count", [lab(V, 0), lab(V, 250)], RULES, [V], "cooldown"),
    ("one frame is not enough", [lab(V, 0)], RULES, [], "ready"),
    ("mixed outcomes never count", [lab(V, 0), lab(D, 250), lab(V, 500), lab(D, 750)], RULES, [], "ready"),
    ("a different outcome restarts the streak", [lab(V, 0), lab(D, 250), lab(D, 500)], RULES, [D], "cooldown"),
    ("draws count like the others", [lab(R, 0), lab(R, 250)], RULES, [R], "cooldown"),
    ("a low-confidence outcome clears the streak",
     [lab(V, 0), lab(V, 250, conf=0.5), lab(V, 500)], RULES, [], "ready"),
    ("confidence exactly at the threshold counts", [lab(V, 0, 0.9), lab(V, 250, 0.9)], RULES, [V], "cooldown"),
    ("none clears the streak", [lab(V, 0), lab(N, 250), lab(V, 500)], RULES, [], "ready"),
    ("error clears the streak", [lab(V, 0), lab(E, 250), lab(V, 500)], RULES, [], "ready"),
    ("a gap larger than max_gap restarts the streak", [lab(V, 0), lab(V, 2001)], RULES, [], "ready"),
    ("a gap of exactly max_gap keeps the streak", [lab(V, 0), lab(V, 2000)], RULES, [V], "cooldown"),
    ("after a restarted streak, the next frame counts", [lab(V, 0), lab(V, 5000), lab(V, 5250)], RULES, [V],
     "cooldown"),
    ("required_consecutive=3 needs three",
     [lab(V, 0), lab(V, 250)], replace(RULES, required_consecutive=3), [], "ready"),
    ("required_consecutive=3 counts on the third",
     [lab(V, 0), lab(V, 250), lab(V, 500)], replace(RULES, required_consecutive=3), [V], "cooldown"),
    ("cooldown ignores everything before it ends (frame time)",
     [lab(V, 0), lab(V, 250), *[lab(D, 300 + i * 250) for i in range(30)]], RULES, [V], "cooldown"),
    ("after the cooldown the frame is handled as waiting_for_none",
     [lab(V, 0), lab(V, 250), lab(N, 10_250)], RULES, [V], "waiting_for_none"),
    ("waiting_for_none needs the full run of none",
     [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500)], RULES, [V], "waiting_for_none"),
    ("the full run of none re-arms",
     [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500), lab(N, 10_750)], RULES, [V], "ready"),
    ("an outcome frame resets the run of none",
     [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500), lab(V, 10_750), lab(N, 11_000), lab(N, 11_250)],
     RULES, [V], "waiting_for_none"),
    ("a low-confidence outcome also resets the run (the banner may still be fading)",
     [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500), lab(V, 10_750, 0.3), lab(N, 11_000),
      lab(N, 11_250)], RULES, [V], "waiting_for_none"),
    ("an error frame neither extends nor resets the run",
     [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500), lab(E, 10_750), lab(N, 11_000)], RULES, [V],
     "ready"),
    ("outcomes in waiting_for_none never count",
     [lab(V, 0), lab(V, 250), *[lab(V, 10_250 + i * 250) for i in range(10)]], RULES, [V], "waiting_for_none"),
    ("the next match counts once re-armed",
     [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500), lab(N, 10_750), lab(D, 60_000), lab(D, 60_250)],
     RULES, [V, D], "cooldown"),
    ("a commercial break longer than the cooldown still needs the run of none",
     [lab(V, 0), lab(V, 250), lab(V, 900_000), lab(V, 900_250)], RULES, [V], "waiting_for_none"),
    ("duplicate seq is ignored (redelivery)",
     [lab(V, 0, seq=5), lab(V, 250, seq=5)], RULES, [], "ready"),
    ("an older seq is ignored (arrived too late)",
     [lab(V, 0, seq=5), lab(N, 100, seq=4), lab(V, 250, seq=6)], RULES, [V], "cooldown"),
    ("a skipped seq within max_gap keeps the streak",
     [lab(V, 0, seq=5), lab(V, 500, seq=8)], RULES, [V], "cooldown"),
    ("frame time going backwards breaks the streak",
     [lab(V, 5000), lab(V, 4800)], RULES, [], "ready"),
    ("a capture clock reset during cooldown ends it (the run of none still protects)",
     [lab(V, 100_000), lab(V, 100_250), lab(N, 50), lab(N, 300), lab(N, 550)], RULES, [V], "ready"),
    ("cooldown 0 and required_none 0 re-arm at once",
     [lab(V, 0), lab(V, 250), lab(V, 500), lab(V, 750)], replace(RULES, cooldown_ms=0, required_none=0), [V, V],
     "cooldown"),
    ("required_none 0: after the cooldown the frame is handled as in ready",
     [lab(V, 0), lab(V, 250), lab(D, 10_250), lab(D, 10_500)], replace(RULES, required_none=0), [V, D],
     "cooldown"),
    # issue 13.2: a label without a verdict never moves the ordering cursor
    ("an error label with a huge seq does not switch counting off",
     [lab(V, 0, seq=5), lab(E, 250, seq=10**12), lab(V, 500, seq=6), lab(V, 750, seq=7)], RULES, [V],
     "cooldown"),
    ("an error label ahead of a straggler leaves the straggler its turn",
     [lab(V, 0, seq=5), lab(E, 250, seq=7), lab(V, 300, seq=6), lab(V, 500, seq=8)], RULES, [V], "cooldown"),
    ("an error label's frame time does not end the cooldown",
     [lab(V, 0), lab(V, 250), lab(E, 10**12)], RULES, [V], "cooldown"),
    ("an error label's frame time does not break the next streak",
     [lab(V, 5000), lab(E, 9_000_000), lab(D, 5250), lab(D, 5500)], RULES, [D], "cooldown"),
]


@pytest.mark.parametrize(("steps", "rules", "detected", "phase"), [c[1:] for c in LABEL_CASES],
                         ids=[c[0] for c in LABEL_CASES])
def test_label_rules(steps: list[Any], rules: Rules, detected: list[str], phase: str) -> None:
    r = run(steps, rules)
    assert r.detections == detected
    assert r.machine.phase == phase
    assert r.machine.counts == fold_counts(r.events)


def test_lowering_required_none_while_waiting_rearms() -> None:
    waiting = run([lab(V, 0), lab(V, 250), lab(N, 10_250)]).machine
    assert waiting.phase == "waiting_for_none"
    r = run([lab(D, 11_000), lab(D, 11_250)], replace(RULES, required_none=0), machine=waiting)
    assert r.detections == [D]


def test_detection_event_fields_and_cooldown_on_frame_time() -> None:
    r = run([lab(V, 1000, 0.97), lab(V, 1250, 0.93)])
    first, det = r.events
    assert first.type == "session_started"
    assert det.type == "detected" and det.source == "auto" and det.outcome == V and det.delta == 1
    assert det.confidence == 0.93  # the weakest frame of the streak
    assert det.frame_seq == 2 and det.captured_at == 1250
    assert det.counts == Counts(1, 0, 0) and det.session == r.machine.session
    assert det.ts == NOW + 1  # wall clock passed in, not used by the rules
    assert r.machine.cooldown_until == 1250 + RULES.cooldown_ms
    assert r.machine.snapshot().cooldown_until == 1250 + RULES.cooldown_ms
    assert r.machine.snapshot().last_outcome == V


def test_wall_clock_does_not_matter() -> None:
    """A replay at any speed gives the same result: only frame time drives the rules."""
    steps = [lab(V, 0), lab(V, 250), lab(N, 10_250), lab(N, 10_500), lab(N, 10_750), lab(D, 11_000),
             lab(D, 11_250)]
    a = run(steps)
    b = Machine()
    for i, s in enumerate(steps):
        b, _ = transition(b, LabelInput(Label("default", i + 1, s[2], s[1], s[3], {}, "m", "w", 1), now=i * 10**9),
                          RULES)
    assert a.detections == [V, D] and b.counts == a.machine.counts and b.phase == a.machine.phase


def test_a_duplicate_changes_nothing_at_all() -> None:
    r = run([lab(V, 0, seq=3)])
    again, events = transition(r.machine, LabelInput(Label("default", 3, 0, V, 0.99, {}, "m", "w", 1), NOW + 99),
                               RULES)
    assert again == r.machine and events == []


@pytest.mark.parametrize(
    ("steps", "last_seq", "last_error_seq"),
    [
        ([lab(N, 0, seq=5), lab(E, 250, seq=10**12)], 5, 10**12),
        ([lab(E, 0, seq=3)], -1, 3),
        ([lab(N, 0, seq=5), lab(E, 250, seq=6), lab(N, 500, seq=7)], 7, 6),
        ([lab(N, 0, seq=5), lab(E, 250, seq=4)], 5, -1),  # old: ignored like any straggler
    ],
    ids=["huge error seq", "error first", "error in order", "old error"],
)
def test_error_labels_never_move_the_cursor(steps: list[Any], last_seq: int, last_error_seq: int) -> None:
    m = run(steps).machine
    assert (m.last_seq, m.last_error_seq) == (last_seq, last_error_seq)
    assert Machine.from_json(m.to_json()) == m


def test_a_redelivered_error_label_changes_nothing() -> None:
    r = run([lab(V, 0, seq=1), lab(E, 250, seq=3), lab(V, 500, seq=2)])
    assert r.machine.frames_len == 1  # the straggler started a new streak after the error cleared one
    again, events = transition(r.machine, LabelInput(Label("default", 3, 250, E, 0.0, {}, "m", "w", 1), NOW + 9),
                               RULES)
    assert again == r.machine and events == []


def test_a_snapshot_without_last_error_seq_still_loads() -> None:
    m = run([lab(V, 0, seq=4)]).machine
    raw = json.loads(m.to_json())
    del raw["last_error_seq"]
    assert Machine.from_json(json.dumps(raw)) == m


# ----------------------------------------------------------------------------- commands


def test_adjust_and_its_limits() -> None:
    r = run([cmd("adjust", outcome=V, delta=2), cmd("adjust", outcome=D, delta=1), cmd("adjust", outcome=V, delta=-1)])
    assert r.machine.counts == Counts(1, 1, 0)
    assert [e.type for e in r.events] == ["session_started", "adjusted", "adjusted", "adjusted"]
    assert all(e.source == "manual" for e in r.events[1:])
    assert r.events[-1].request_id == "r2" and r.events[-1].delta == -1


@pytest.mark.parametrize(
    ("counts", "kw", "code", "message"),
    [
        (Counts(), {"outcome": V, "delta": -1}, "rejected", "cannot remove a victory: the count is already 0"),
        (Counts(0, 0, 0), {"outcome": R, "delta": -2}, "rejected", "cannot remove 2 draws: the count is already 0"),
        (Counts(2, 0, 0), {"outcome": V, "delta": -3}, "rejected", "cannot remove 3 victories: the count is only 2"),
        (Counts(0, 1, 0), {"outcome": D, "delta": -2}, "rejected", "cannot remove 2 defeats: the count is only 1"),
        (Counts(), {"outcome": V, "delta": 0}, "invalid", "adjust needs a delta other than 0, e.g. 1 or -1"),
        (Counts(), {"delta": 1}, "invalid", "adjust needs an outcome: victory, defeat or draw"),
    ],
)
def test_counts_never_go_below_zero(counts: Counts, kw: dict[str, Any], code: str, message: str) -> None:
    m = run([cmd("set", counts=counts)]).machine
    with pytest.raises(Rejected) as info:
        transition(m, CommandInput(Command("x", "default", "adjust", **kw), NOW), RULES)
    assert (info.value.code, info.value.message) == (code, message)


def test_set_and_undo_of_set() -> None:
    r = run([cmd("adjust", outcome=V, delta=1), cmd("adjust", outcome=D, delta=1), cmd("set", counts=Counts(7, 3, 1)),
             cmd("undo")])
    assert r.machine.counts == Counts(1, 1, 0)
    undone = r.events[-1]
    assert undone.type == "undone" and undone.undoes == r.events[-2].id and undone.outcome is None
    assert r.machine.results == "WL"  # the order of results before the set is back
    with pytest.raises(Rejected, match="cannot be negative"):
        transition(r.machine, CommandInput(Command("x", "default", "set", counts=Counts(-1, 0, 0)), NOW), RULES)


def test_undo_of_a_detection_rearms_detection() -> None:
    """A false positive is undone: the real result of that match still counts."""
    r = run([lab(V, 0), lab(V, 250), cmd("undo"), lab(D, 500), lab(D, 750)])
    assert r.detections == [V, D]
    assert r.machine.counts == Counts(0, 1, 0)
    undone = next(e for e in r.events if e.type == "undone")
    assert undone.outcome == V and undone.delta == -1 and undone.counts == Counts()


def test_undo_walks_back_and_an_undo_is_not_undoable() -> None:
    r = run([cmd("adjust", outcome=V, delta=1), cmd("adjust", outcome=D, delta=2), cmd("undo"), cmd("undo")])
    assert r.machine.counts == Counts()
    assert [e.undoes for e in r.events if e.type == "undone"] == [r.events[2].id, r.events[1].id]
    with pytest.raises(Rejected, match="nothing to undo in this session"):
        transition(r.machine, CommandInput(Command("x", "default", "undo"), NOW), RULES)


def test_undo_after_a_negative_adjust_adds_back() -> None:
    r = run([cmd("adjust", outcome=V, delta=2), cmd("adjust", outcome=V, delta=-1), cmd("undo")])
    assert r.machine.counts == Counts(2, 0, 0)
    assert r.events[-1].delta == 1


def test_new_session_resets_counts_keeps_the_phase_and_the_old_session() -> None:
    r = run([lab(V, 0), lab(V, 250), cmd("new_session", note="day 2"), lab(V, 500), lab(V, 750)])
    assert r.detections == [V]  # the banner still on screen does not count again in the new session
    assert r.machine.counts == Counts() and r.machine.phase == "cooldown"
    starts = [e for e in r.events if e.type == "session_started"]
    assert len(starts) == 2 and starts[0].session != starts[1].session and starts[1].note == "day 2"
    assert starts[1].request_id == "r2" and starts[1].source == "manual"
    with pytest.raises(Rejected):
        transition(r.machine, CommandInput(Command("x", "default", "undo"), NOW), RULES)


def test_expired_commands_are_refused_and_change_nothing() -> None:
    m = run([cmd("adjust", outcome=V, delta=1)]).machine
    late = Command("x", "default", "adjust", outcome=V, delta=1, deadline=NOW - 1)
    with pytest.raises(Rejected) as info:
        transition(m, CommandInput(late, NOW), RULES)
    assert info.value.code == "expired"
    on_time = replace(late, deadline=NOW)
    m2, events = transition(m, CommandInput(on_time, NOW), RULES)
    assert m2.counts == Counts(2, 0, 0) and len(events) == 1
    # the service keeps a margin: its reply must be in Redis before the caller stops waiting
    margin = replace(RULES, deadline_margin_ms=100)
    with pytest.raises(Rejected, match="too close to its deadline"):
        transition(m, CommandInput(replace(late, deadline=NOW + 100), NOW + 1), margin)
    assert transition(m, CommandInput(replace(late, deadline=NOW + 100), NOW), margin)[0].counts == Counts(2, 0, 0)


def test_a_rejected_command_on_a_fresh_channel_leaves_it_fresh() -> None:
    with pytest.raises(Rejected):
        transition(Machine(), CommandInput(Command("x", "default", "undo"), NOW), RULES)


def test_import_only_into_an_empty_channel() -> None:
    busy = run([cmd("adjust", outcome=V, delta=1)]).machine
    with pytest.raises(Rejected, match="empty channel"):
        transition(busy, CommandInput(Command("x", "default", "import", payload=""), NOW), RULES)


# ----------------------------------------------------------------------------- ids, snapshots, folding


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [("", 5, "5-0"), ("5-0", 6, "6-0"), ("5-0", 5, "5-1"), ("9-3", 5, "9-4")],
)
def test_next_event_id(last: str, now: int, expected: str) -> None:
    assert next_event_id(last, now) == expected


def test_event_ids_increase_even_within_one_millisecond() -> None:
    m = Machine()
    ids = []
    for i in range(5):
        m, evs = transition(m, CommandInput(Command(f"r{i}", "default", "adjust", outcome=V, delta=1), NOW), RULES)
        ids += [e.id for e in evs]
    assert ids == [f"{NOW}-{i}" for i in range(6)]


def test_machine_round_trips_through_json() -> None:
    m = run([lab(V, 0), lab(V, 250), cmd("set", counts=Counts(4, 2, 1)), lab(N, 10_300)]).machine
    assert Machine.from_json(m.to_json()) == m


def test_folding_the_log_rebuilds_the_machine() -> None:
    r = run([lab(V, 0), lab(V, 250), cmd("adjust", outcome=D, delta=2), cmd("set", counts=Counts(3, 3, 0)),
             cmd("undo"), cmd("new_session"), cmd("adjust", outcome=R, delta=1), lab(N, 20_000), lab(N, 20_250),
             lab(N, 20_500), lab(V, 21_000), lab(V, 21_250)])
    folded = fold(r.events, RULES.cooldown_ms)
    m = r.machine
    assert (folded.counts, folded.session, folded.last_event_id, folded.results) == (
        m.counts, m.session, m.last_event_id, m.results)
    assert [u.event_id for u in folded.undo] == [u.event_id for u in m.undo]
    assert r.detections == [V, V]
    assert folded.phase == "cooldown" and folded.cooldown_until == 21_250 + RULES.cooldown_ms
    assert folded.last_seq == 7  # the newest frame the log names: it is never counted twice
