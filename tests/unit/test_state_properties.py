"""Invariants of the counting rules under arbitrary label/command sequences (hypothesis)."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contracts.export import to_jsonl
from services.common.contracts.messages import LABEL_NAMES, OUTCOMES, Command, Counts, Event, Label
from services.state.fold import fold
from services.state.history import check_importable, fold_counts, summarize, summarize_sessions
from services.state.machine import RESULT_CHARS, Machine
from services.state.reorder import ReorderBuffer
from services.state.rules import CommandInput, LabelInput, Rejected, Rules, transition

RULES = Rules(min_confidence=0.9, required_consecutive=2, max_gap_ms=1000, cooldown_ms=5000, required_none=3)

label_steps = st.tuples(
    st.just("L"),
    st.sampled_from(LABEL_NAMES),
    st.sampled_from([0.5, 0.95, 0.99]),
    st.sampled_from([0, 100, 250, 250, 250, 1500, 6000]),  # frame-time step
    st.sampled_from([1, 1, 1, 2, 0, -1]),  # seq step: duplicates and stragglers too
)
command_steps = st.one_of(
    st.tuples(st.just("adjust"), st.sampled_from(OUTCOMES), st.integers(-3, 3)),
    st.tuples(st.just("set"), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("new_session")),
    st.tuples(st.just("mode"), st.sampled_from(["", "competitive", "Quick Play", "arcade", "My 6v6", "bad/name"])),
)
steps = st.lists(st.one_of(label_steps, label_steps, label_steps, command_steps), max_size=80)


def to_inputs(raw: list[tuple[Any, ...]]) -> list[LabelInput | CommandInput]:
    out: list[LabelInput | CommandInput] = []
    seq, t, now = 0, 1_000_000, 1_700_000_000_000
    for i, step in enumerate(raw):
        now += 7
        if step[0] == "L":
            _, name, conf, dt, dseq = step
            seq, t = max(0, seq + dseq), t + dt
            out.append(LabelInput(Label("c", seq, t, name, conf, {}, "m", "w", 1.0), now))
        elif step[0] == "adjust":
            out.append(CommandInput(Command(f"r{i}", "c", "adjust", outcome=step[1], delta=step[2]), now))
        elif step[0] == "set":
            out.append(CommandInput(Command(f"r{i}", "c", "set", counts=Counts(*step[1:])), now))
        elif step[0] == "mode":
            out.append(CommandInput(Command(f"r{i}", "c", "mode", mode=step[1]), now))
        else:
            out.append(CommandInput(Command(f"r{i}", "c", step[0]), now))
    return out


def apply_all(inputs: list[LabelInput | CommandInput], m: Machine | None = None) -> tuple[Machine, list[Event]]:
    m = m or Machine()
    events: list[Event] = []
    for inp in inputs:
        try:
            after, new = transition(m, inp, RULES)
        except Rejected:
            continue
        m = after
        events += new
    return m, events


@settings(max_examples=300, deadline=None)
@given(steps)
def test_counts_are_the_fold_of_the_event_log(raw: list[tuple[Any, ...]]) -> None:
    m, events = apply_all(to_inputs(raw))
    assert fold_counts(events) == m.counts
    assert min(m.counts.as_dict().values()) >= 0
    if events:
        check_importable(events)  # every event's counts follow from the ones before: nothing hidden
        ids = [e.id for e in events]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == len(ids)
        assert m.last_event_id == ids[-1]
        # every event carries the mode at the time: only a mode_changed changes it, and the machine keeps it
        assert all(e.mode == prev.mode for prev, e in pairwise(events) if e.type != "mode_changed")
        assert m.mode == events[-1].mode
    assert all(min(c.as_dict().values()) >= 0 and c != Counts() for c in m.by_mode.values())
    if not any(e.type == "set" for e in events):
        # without a `set`, every match is counted in exactly one mode
        assert sum_counts(m.by_mode.values()) == m.counts
    assert all(m.mode_results.values()) and set(m.mode_results) <= set(m.by_mode)
    for mode, results in m.mode_results.items():  # a mode's results are among its counts
        assert all(results.count(c) <= m.by_mode[mode].get(o) for o, c in RESULT_CHARS.items())
    session = [e for e in events if e.session == m.session]
    counted_in = {e.mode for e in session if e.type in ("detected", "adjusted", "set", "undone")}
    if len(counted_in) == 1:  # a session counted in one mode: that mode's results are the session's
        assert m.mode_results == ({counted_in.pop(): m.results} if m.results else {})


def sum_counts(counts: Any) -> Counts:
    total = Counts()
    for c in counts:
        total = Counts(total.victories + c.victories, total.defeats + c.defeats, total.draws + c.draws)
    return total


@settings(max_examples=300, deadline=None)
@given(steps)
def test_replaying_the_same_labels_changes_nothing(raw: list[tuple[Any, ...]]) -> None:
    inputs = to_inputs(raw)
    m, _ = apply_all(inputs)
    labels = [i for i in inputs if isinstance(i, LabelInput)]
    again, events = apply_all(labels, m)
    assert events == [] and again == m


@settings(max_examples=200, deadline=None)
@given(steps)
def test_the_log_rebuilds_the_machine(raw: list[tuple[Any, ...]]) -> None:
    m, events = apply_all(to_inputs(raw))
    folded = fold(events, RULES.cooldown_ms)
    assert (folded.counts, folded.session, folded.last_event_id, folded.results) == (
        m.counts, m.session, m.last_event_id, m.results)
    assert [u.event_id for u in folded.undo] == [u.event_id for u in m.undo]
    assert Machine.from_json(m.to_json()) == m


@settings(max_examples=300, deadline=None)
@given(steps)
def test_folding_the_emitted_log_gives_the_live_machine(raw: list[tuple[Any, ...]]) -> None:
    """Every change an event stands for is made by the one fold.apply, live and from the log alike."""
    m, ended, events = Machine(), [], []
    for inp in to_inputs(raw):
        try:
            after, new = transition(m, inp, RULES)
        except Rejected:
            continue
        if any(e.type == "session_started" for e in new) and m.session:
            ended.append(summarize(m, ended_at=new[0].ts))  # what the state service stores for the old session
        m, events = after, events + new
    folded = fold(events, RULES.cooldown_ms)
    assert (folded.counts, folded.results, folded.undo) == (m.counts, m.results, m.undo)
    assert (folded.mode, folded.by_mode, folded.mode_results) == (m.mode, m.by_mode, m.mode_results)
    assert (folded.session, folded.session_started_at, folded.session_events) == (
        m.session, m.session_started_at, m.session_events)
    assert (folded.last_event_id, folded.last_event_at, folded.has_history) == (
        m.last_event_id, m.last_event_at, m.has_history)
    if m.phase == "cooldown":  # entered only by a detection, which the log records with its frame time
        assert (folded.phase, folded.cooldown_until, folded.detected_at) == ("cooldown", m.cooldown_until,
                                                                             m.detected_at)
    assert folded.last_seq <= m.last_seq  # the rebuilt cursor never skips a frame the live one would count
    # the gateway's summaries (folded from the log) are the ones the state service writes
    summaries = summarize_sessions(events)
    assert all(s in summaries for s in ended) and summaries[-1:] == ([summarize(m)] if events else [])
    if events:  # an export imported into an empty channel restores the session, without the phase
        restored, imported = transition(Machine(), CommandInput(Command("imp", "c", "import", payload=to_jsonl(
            events)), 1_800_000_000_000), RULES)
        assert (restored.counts, restored.results, restored.session, restored.undo) == (
            m.counts, m.results, m.session, ())
        assert (restored.mode, restored.by_mode, restored.mode_results) == (m.mode, m.by_mode, m.mode_results)
        assert restored.phase == "ready" and restored.last_seq == -1
        assert fold(imported, RULES.cooldown_ms).counts == m.counts


@settings(max_examples=200, deadline=None)
@given(st.lists(label_steps, max_size=60), st.randoms(use_true_random=False))
def test_reordering_within_the_window_gives_the_in_order_result(raw: list[tuple[Any, ...]], rnd: random.Random) -> None:
    unique: dict[int, LabelInput] = {}
    for i in to_inputs(raw):  # a redelivered label is the same label: one per seq
        if isinstance(i, LabelInput):
            unique.setdefault(i.label.seq, i)
    inputs = list(unique.values())
    expected, expected_events = apply_all(sorted(inputs, key=lambda i: i.label.seq))
    shuffled = list(inputs)
    rnd.shuffle(shuffled)
    buf: ReorderBuffer[LabelInput] = ReorderBuffer(10_000)
    for inp in shuffled:
        buf.push(inp.label.seq, inp, 0)
    released = [inp for _, inp in buf.pop(10_000)]
    got, got_events = apply_all(released)
    assert got.counts == expected.counts
    assert [(e.type, e.outcome, e.frame_seq) for e in got_events] == [
        (e.type, e.outcome, e.frame_seq) for e in expected_events]
