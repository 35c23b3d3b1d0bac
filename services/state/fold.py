"""What each event does to a channel's machine: one :func:`apply` for the live rules and the log.

The counting rules decide which events a label or a command produces
(``services/state/rules.py``); every change those events stand for is made
here, once, whether the event was just emitted or is read back from the log
(a lost snapshot rebuilt, an import, the session summaries). So the log
always rebuilds the machine the rules left behind.

An event carries the counts after it and the channel's mode; what it does
to the results string, the per-mode counts and results, the undo stack and
the phase follows from its type. Per-mode counts change here only: a detection or an
adjustment counts in the event's mode, a ``set`` applies its deltas to the
event's mode (never below 0, so after a ``set`` the modes may no longer add
up to the counts), an undo reverses exactly what its event did to that
event's own mode, a new session starts them from nothing. Each mode's
results string (its streak and last results) follows its counts the same
way. The parts of the machine
that no event records (the streak being built, the run of `none` frames, the
frame cursor between events) are the rules' alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from services.common.contracts.messages import OUTCOMES, Event
from services.state.machine import (
    Machine,
    UndoEntry,
    add_in_mode,
    add_mode_result,
    apply_results,
    clear_frames,
    rearm,
    with_mode_counts,
    with_mode_results,
)

MAX_UNDO = 50  # undoable events kept per session


def apply(m: Machine, ev: Event, cooldown_ms: int | None = None) -> Machine:
    """The machine after ``ev``.

    ``cooldown_ms`` is the cooldown a detection starts from its frame time;
    with it the event also moves the phase and the frame cursor (``last_seq``,
    ``last_captured_at``), so no frame the log names is counted twice. Without
    it (``None``: an import, whose frame times and seqs are another capture's,
    or a summary that needs only the counts) they are left alone.
    """
    before = m
    m = replace(
        m, counts=ev.counts, last_event_id=ev.id or m.last_event_id, last_event_at=ev.ts, updated_at=ev.ts,
        session_events=m.session_events + 1, mode=ev.mode,
        has_history=m.has_history or ev.type not in ("session_started", "mode_changed"),
    )
    if ev.type == "session_started":
        # the phase carries over: a banner still up when a session starts must not count in the new one
        m = replace(m, session=ev.session, session_started_at=ev.ts, session_events=1, results="", undo=(),
                    by_mode={}, mode_results={})
    elif ev.type in ("detected", "adjusted") and ev.outcome is not None:
        m = replace(m, results=apply_results(m.results, ev.outcome, ev.delta),
                    by_mode=add_in_mode(m.by_mode, ev.mode, ev.outcome, ev.delta),
                    mode_results=add_mode_result(m.mode_results, ev.mode, ev.outcome, ev.delta))
        m = _push_undo(m, UndoEntry(event_id=ev.id, type=ev.type, outcome=ev.outcome, delta=ev.delta,
                                    counts_before=before.counts, mode=ev.mode))
        if ev.type == "detected" and cooldown_ms is not None and ev.captured_at is not None:
            m = clear_frames(replace(m, phase="cooldown", cooldown_until=ev.captured_at + cooldown_ms,
                                     detected_at=ev.captured_at, none_run=0))
    elif ev.type == "set":
        results, by_mode, mode_results = m.results, m.by_mode, m.mode_results
        for outcome in OUTCOMES:  # keep the known results where they still fit
            delta = ev.counts.get(outcome) - before.counts.get(outcome)
            results = apply_results(results, outcome, delta)
            by_mode = add_in_mode(by_mode, ev.mode, outcome, delta)
            mode_results = add_mode_result(mode_results, ev.mode, outcome, delta)
        m = _push_undo(replace(m, results=results, by_mode=by_mode, mode_results=mode_results), UndoEntry(
            event_id=ev.id, type="set", counts_before=before.counts, results_before=before.results, mode=ev.mode,
            mode_counts_before=before.mode_counts(ev.mode), mode_results_before=before.mode_results.get(ev.mode, "")))
    elif ev.type == "undone":
        entry = next((u for u in reversed(m.undo) if u.event_id == ev.undoes), None)
        m = replace(m, undo=tuple(u for u in m.undo if u is not entry))
        if entry is not None and entry.type == "set":
            m = replace(m, results=entry.results_before,
                        by_mode=with_mode_counts(m.by_mode, entry.mode, entry.mode_counts_before),
                        mode_results=with_mode_results(m.mode_results, entry.mode, entry.mode_results_before))
        elif ev.outcome is not None:
            mode = ev.mode if entry is None else entry.mode  # (an undo of an event the stack forgot: best effort)
            m = replace(m, results=apply_results(m.results, ev.outcome, ev.delta),
                        by_mode=add_in_mode(m.by_mode, mode, ev.outcome, ev.delta),
                        mode_results=add_mode_result(m.mode_results, mode, ev.outcome, ev.delta))
        if entry is not None and entry.type == "detected":
            m = rearm(m)  # the detection was wrong: the real result of that match must still count
    elif ev.type == "imported":
        m = replace(m, undo=())  # an import is a restore point: no undo across it
    if cooldown_ms is not None and ev.frame_seq is not None and ev.source == "auto":
        m = replace(m, last_seq=max(m.last_seq, ev.frame_seq))
    if cooldown_ms is not None and ev.captured_at is not None:
        m = replace(m, last_captured_at=max(m.last_captured_at or 0, ev.captured_at))
    return m


def _push_undo(m: Machine, entry: UndoEntry) -> Machine:
    return replace(m, undo=(*m.undo, entry)[-MAX_UNDO:])


def fold(events: Iterable[Event], cooldown_ms: int | None = None, base: Machine | None = None) -> Machine:
    """The machine an event log leaves (from ``base``, a fresh channel by default); see :func:`apply`."""
    m = base or Machine()
    for ev in events:
        m = apply(m, ev, cooldown_ms)
    return m


__all__ = ["MAX_UNDO", "apply", "fold"]
