"""The counting rules (DESIGN §3) as a pure function: they decide, the events change the machine.

``transition(machine, input, rules) -> (machine, events)`` — no Redis, no
clock: time is the frame's ``captured_at`` for the rules and ``input.now``
(passed in) for the events' ``ts`` and stream ids. A command that cannot be
applied raises :class:`Rejected` with a sentence the gateway shows as-is.

The rules say which events a label or command produces; each is applied as
it is emitted by :func:`services.state.fold.apply`, the same function that
folds the log (snapshot rebuild, import, session summaries). Only what no
event records is changed here: the streak being built, the run of `none`
frames, the phase leaving cooldown, the frame cursor.

Stream ids are assigned here (``next_event_id``): the state service is the
only writer of ``events:{ch}``, so the ids follow from the last one and the
store can put the event, the snapshot and the reply (which names the id) in
one MULTI/EXEC. The store checks the stream's last id before committing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from services.common.config.settings import StateSettings
from services.common.contracts import streamids
from services.common.contracts.messages import Command, Counts, Event, EventType, Label, MessageError, Outcome
from services.common.contracts.modes import InvalidModeError, mode_label, normalize_mode
from services.state import scanimport
from services.state.evidence import enough, full_evidence, support_of
from services.state.fold import apply
from services.state.history import check_importable, parse_jsonl
from services.state.machine import Machine, clear_frames, rearm
from services.state.rejected import Rejected

MAX_COUNT = 1_000_000
DEADLINE_MARGIN_MS = 100

PLURAL = {"victory": "victories", "defeat": "defeats", "draw": "draws"}


@dataclass(frozen=True, slots=True)
class Rules:
    min_confidence: float = 0.9
    required_consecutive: int = 2
    max_gap_ms: int = 2000
    cooldown_ms: int = 180_000
    required_none: int = 50
    # A command is refused this long before its deadline: the caller stops waiting at the deadline, and
    # the commit that carries the reply must reach Redis before that, or the caller would be told
    # "not applied" about a command that was.
    deadline_margin_ms: int = 0

    @classmethod
    def from_settings(cls, s: StateSettings) -> Rules:
        return cls(
            min_confidence=s.min_confidence,
            required_consecutive=s.required_consecutive,
            max_gap_ms=s.max_gap_ms,
            cooldown_ms=round(s.cooldown_s * 1000),
            required_none=s.required_none,
            deadline_margin_ms=DEADLINE_MARGIN_MS,
        )


@dataclass(frozen=True, slots=True)
class LabelInput:
    label: Label
    now: int  # epoch ms (wall clock) for the events' ts


@dataclass(frozen=True, slots=True)
class CommandInput:
    command: Command
    now: int


Input = LabelInput | CommandInput


# ---------------------------------------------------------------------------- ids


def parse_id(event_id: str) -> tuple[int, int]:
    if not event_id:
        return 0, 0
    return streamids.parse_id(event_id)


def next_event_id(last: str, now: int) -> str:
    """A stream id greater than ``last``: ``now-0``, or ``last_ms-(seq+1)`` if the clock is behind."""
    ms, seq = parse_id(last)
    if now > ms:
        return f"{now}-0"
    return f"{ms}-{seq + 1}"


def session_id_for(now: int) -> str:
    """A readable, sortable session id from a wall-clock time (UTC)."""
    base = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now / 1000))
    return f"{base}-{now % 1000:03d}"


# ---------------------------------------------------------------------------- events


class _Emitter:
    """Collects the events of one transition; each is applied to the machine as it is emitted."""

    def __init__(self, now: int, cooldown_ms: int) -> None:
        self.now = now
        self.cooldown_ms = cooldown_ms
        self.events: list[Event] = []

    def emit(self, m: Machine, type_: EventType, counts: Counts, session: str = "", **kw: Any) -> Machine:
        """A new event, carrying the counts after it and the mode (the current one unless given), with the
        next stream id."""
        kw.setdefault("mode", m.mode)
        ev = Event(type=type_, counts=counts, session=session or m.session, ts=self.now,
                   id=next_event_id(m.last_event_id, self.now), **kw)
        return self.add(m, ev, self.cooldown_ms)

    def add(self, m: Machine, ev: Event, cooldown_ms: int | None) -> Machine:
        self.events.append(ev)
        return apply(m, ev, cooldown_ms)


def _start_session(em: _Emitter, m: Machine, note: str, request_id: str = "") -> Machine:
    session = session_id_for(em.now)
    if session == m.session:  # two sessions in the same millisecond
        session += "b"
    source = "manual" if request_id else "auto"
    return em.emit(m, "session_started", Counts(), session=session, source=source, request_id=request_id, note=note)


# ---------------------------------------------------------------------------- labels


def _ready(m: Machine, label: Label, rules: Rules, em: _Emitter) -> Machine:
    support = support_of(label, rules.min_confidence)
    if support is None:
        return clear_frames(m)
    outcome, evidence, confidence = support
    t = label.captured_at
    same = (
        m.frames_outcome == outcome
        and m.frames_last_at is not None
        and 0 <= t - m.frames_last_at <= rules.max_gap_ms
    )
    window = rules.required_consecutive + 1
    if same:
        # a streak from a snapshot older than banner evidence: its frames were confident ones
        before = m.frames_evidence or (full_evidence(rules.min_confidence) or 0.0,) * min(m.frames_len, window)
        m = replace(
            m, frames_len=m.frames_len + 1, frames_last_at=t,
            frames_min_conf=min(m.frames_min_conf, confidence),
            frames_evidence=(*before, evidence)[-window:],
        )
    else:
        m = replace(m, frames_outcome=outcome, frames_len=1, frames_last_at=t, frames_min_conf=confidence,
                    frames_evidence=(evidence,))
    required = rules.required_consecutive
    if m.frames_len < required or not enough(m.frames_evidence, rules.min_confidence, required):
        return m
    # counted: the event puts the channel in cooldown from this frame's time
    return em.emit(m, "detected", m.counts.add(outcome, 1), source="auto", outcome=outcome, delta=1,
                   confidence=m.frames_min_conf, frame_seq=label.seq, captured_at=t)


def _waiting(m: Machine, label: Label, rules: Rules, em: _Emitter) -> Machine:
    if rules.required_none == 0:  # (the setting was lowered while this channel was waiting)
        return _ready(rearm(m), label, rules, em)
    if label.read_outcome is not None:  # the reader saw an outcome word, even unsure: the banner may still be up
        return replace(m, none_run=0)
    if label.label == "none":
        run = m.none_run + 1
        if run >= rules.required_none:
            return rearm(m)
        return replace(m, none_run=run)
    if label.outcome is not None:  # any outcome, whatever its confidence: the banner may still be up
        return replace(m, none_run=0)
    return m  # an `error` frame says nothing either way: it neither extends nor resets the run


def _on_label(m: Machine, label: Label, rules: Rules, em: _Emitter) -> Machine:
    if label.seq <= m.last_seq:
        return m  # duplicate or old frame (redelivery, or a label that missed the reorder window)
    if label.label == "error":
        # No verdict, and its fields come from a frame that could not be read: its seq and time must
        # not move the cursor (a bogus huge seq would make every later frame look old) nor the phase.
        # It only breaks a streak, as a frame nobody could look at.
        if label.seq <= m.last_error_seq:
            return m  # a redelivery
        m = replace(m, last_error_seq=label.seq, updated_at=em.now)
        if not m.session:
            m = _start_session(em, m, "first session of the channel")
        return clear_frames(m) if m.phase == "ready" else m
    prev_at = m.last_captured_at
    m = replace(m, last_seq=label.seq, last_captured_at=label.captured_at, updated_at=em.now)
    if not m.session:
        m = _start_session(em, m, "first session of the channel")
    t = label.captured_at
    if m.phase == "cooldown":
        clock_went_back = m.detected_at is not None and t < m.detected_at
        if m.cooldown_until is not None and t < m.cooldown_until and not clock_went_back:
            return m
        # the cooldown is over (or the capture clock was reset): handle the frame as in waiting_for_none
        m = replace(m, phase="waiting_for_none", none_run=0)
        return _waiting(m, label, rules, em)
    if m.phase == "waiting_for_none":
        return _waiting(m, label, rules, em)
    if prev_at is not None and t < prev_at:
        m = clear_frames(m)  # frame time went backwards: a streak cannot span it
    return _ready(m, label, rules, em)


# ---------------------------------------------------------------------------- commands


def _count_word(outcome: Outcome, n: int) -> str:
    return f"{n} {outcome if n == 1 else PLURAL[outcome]}"


def _adjust(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    if cmd.outcome is None:
        raise Rejected("invalid", "adjust needs an outcome: victory, defeat or draw")
    if cmd.delta is None or cmd.delta == 0:
        raise Rejected("invalid", "adjust needs a delta other than 0, e.g. 1 or -1")
    if abs(cmd.delta) > MAX_COUNT:
        raise Rejected("invalid", f"adjust delta {cmd.delta} is too large")
    have = m.counts.get(cmd.outcome)
    if have + cmd.delta < 0:
        removing = _count_word(cmd.outcome, -cmd.delta)
        if have == 0:
            raise Rejected("rejected", f"cannot remove {'a ' + cmd.outcome if cmd.delta == -1 else removing}: "
                           f"the count is already 0")
        raise Rejected("rejected", f"cannot remove {removing}: the count is only {have}")
    if have + cmd.delta > MAX_COUNT:
        raise Rejected("invalid", f"a count cannot exceed {MAX_COUNT}")
    in_mode = m.mode_counts(m.mode).get(cmd.outcome)
    if in_mode + cmd.delta < 0:  # a removal is taken from the current mode, where the fold applies it
        where = f"in {mode_label(m.mode)}" if m.mode else "without a mode"
        raise Rejected("rejected", f"cannot remove {_count_word(cmd.outcome, -cmd.delta)} {where}: this session "
                       f"counted {in_mode} there; switch to the mode it was counted in, or use undo")
    # frame_seq: the frame a streamer counted by hand (a near miss), so `owc collect` can label it
    return em.emit(m, "adjusted", m.counts.add(cmd.outcome, cmd.delta), source="manual", outcome=cmd.outcome,
                   delta=cmd.delta, request_id=cmd.request_id, note=cmd.note, frame_seq=cmd.frame_seq)


def _set(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    c = cmd.counts
    if c is None:
        raise Rejected("invalid", "set needs the three counts: victories, defeats and draws")
    for name, value in c.as_dict().items():
        if value < 0:
            raise Rejected("invalid", f"{name} cannot be negative (got {value})")
        if value > MAX_COUNT:
            raise Rejected("invalid", f"{name} cannot exceed {MAX_COUNT} (got {value})")
    return em.emit(m, "set", c, source="manual", request_id=cmd.request_id, note=cmd.note)


def _undo(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    if not m.undo:
        raise Rejected("rejected", "nothing to undo in this session")
    entry = m.undo[-1]
    kw: dict[str, Any] = {"source": "manual", "request_id": cmd.request_id, "note": cmd.note,
                          "undoes": entry.event_id}
    if entry.type == "set" or entry.outcome is None:  # its inverse is not a delta: the counts before it
        return em.emit(m, "undone", entry.counts_before, **kw)
    outcome, delta = entry.outcome, -entry.delta
    if m.counts.get(outcome) + delta < 0:  # cannot happen while undo pops in order; never hide it
        raise Rejected("rejected", f"cannot undo: the {PLURAL[outcome]} count would go below 0")
    return em.emit(m, "undone", m.counts.add(outcome, delta), outcome=outcome, delta=delta, **kw)


def _mode(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    try:
        mode = normalize_mode(cmd.mode)
    except InvalidModeError as exc:
        raise Rejected("invalid", str(exc)) from None
    if mode == m.mode:
        return m  # already the mode: nothing to record (the reply is ok, with no event)
    return em.emit(m, "mode_changed", m.counts, source="manual", request_id=cmd.request_id, note=cmd.note, mode=mode)


def _import(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    if m.has_history:
        raise Rejected("rejected", "import only works into an empty channel: this channel already has events")
    try:
        events = parse_jsonl(cmd.payload)
        check_importable(events)
    except MessageError as exc:
        raise Rejected("invalid", f"cannot import: {exc}") from None
    # re-append the exported events with fresh ids, keeping their references to each other; their
    # frame times and seqs are another capture's, so they leave the phase and the cursor alone
    id_map: dict[str, str] = {}
    for ev in events:
        new_id = next_event_id(m.last_event_id, em.now)
        if ev.id:
            id_map[ev.id] = new_id
        m = em.add(m, replace(ev, id=new_id, undoes=id_map.get(ev.undoes, ev.undoes)), cooldown_ms=None)
    return em.emit(m, "imported", m.counts, source="manual", request_id=cmd.request_id,
                   note=cmd.note or f"imported {len(events)} events")


def _on_command(m: Machine, cmd: Command, now: int, rules: Rules, em: _Emitter) -> Machine:
    if cmd.deadline and now > cmd.deadline - rules.deadline_margin_ms:
        late = now - cmd.deadline
        when = f"{late} ms after its deadline" if late > 0 else "too close to its deadline"
        raise Rejected("expired", f"the command arrived {when} and was not applied; try again")
    if cmd.type == "import":
        return _import(m, cmd, em)
    if not m.session:
        m = _start_session(em, m, "first session of the channel")
    m = replace(m, updated_at=now)
    if cmd.type == "adjust":
        return _adjust(m, cmd, em)
    if cmd.type == "set":
        return _set(m, cmd, em)
    if cmd.type == "undo":
        return _undo(m, cmd, em)
    if cmd.type == "new_session":
        return _start_session(em, m, cmd.note, request_id=cmd.request_id)
    if cmd.type == "mode":
        return _mode(m, cmd, em)
    if cmd.type == "scan_import":  # `owc scan --import` (services/state/scanimport.py)
        return scanimport.add_results(m, cmd, em.emit, lambda m2, note: _start_session(em, m2, note, cmd.request_id))
    raise Rejected("invalid", f"unknown command type {cmd.type!r}")


def transition(machine: Machine, inp: Input, rules: Rules) -> tuple[Machine, list[Event]]:
    """Apply one label or command; return the new machine and the events it produced.

    Raises :class:`Rejected` for a command that cannot be applied (the machine is unchanged).
    """
    em = _Emitter(inp.now, rules.cooldown_ms)
    if isinstance(inp, LabelInput):
        return _on_label(machine, inp.label, rules, em), em.events
    return _on_command(machine, inp.command, inp.now, rules, em), em.events


__all__ = [
    "CommandInput",
    "Input",
    "LabelInput",
    "Rejected",
    "Rules",
    "next_event_id",
    "transition",
]
