"""The counting rules (DESIGN §3) as a pure function.

``transition(machine, input, rules) -> (machine, events)`` — no Redis, no
clock: time is the frame's ``captured_at`` for the rules and ``input.now``
(passed in) for the events' ``ts`` and stream ids. A command that cannot be
applied raises :class:`Rejected` with a sentence the gateway shows as-is.

Stream ids are assigned here (``next_event_id``): the state service is the
only writer of ``events:{ch}``, so the ids follow from the last one and the
store can put the event, the snapshot and the reply (which names the id) in
one MULTI/EXEC. The store checks the stream's last id before committing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from services.common.history import (
    SessionSummary,
    apply_results,
    check_importable,
    current_run,
    parse_jsonl,
    results_outcomes,
    summarize,
)
from services.common.messages import (
    OUTCOMES,
    Command,
    Counts,
    Event,
    EventType,
    Label,
    MessageError,
    Outcome,
    Phase,
    StateSnapshot,
)
from services.common.settings import StateSettings

MAX_UNDO = 50  # undoable events kept per session
MAX_COUNT = 1_000_000
RECENT = 20
DEADLINE_MARGIN_MS = 100

PLURAL = {"victory": "victories", "defeat": "defeats", "draw": "draws"}


class Rejected(Exception):
    """A command that is refused; ``message`` is a sentence for the streamer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
class UndoEntry:
    """What it takes to revert one counting event."""

    event_id: str
    type: EventType  # detected | adjusted | set
    outcome: Outcome | None
    delta: int
    counts_before: Counts
    results_before: str  # only kept for ``set`` (its inverse is not a delta)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "outcome": self.outcome,
            "delta": self.delta,
            "counts_before": self.counts_before.as_dict(),
            "results_before": self.results_before,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> UndoEntry:
        return cls(
            event_id=str(raw["event_id"]),
            type=raw["type"],
            outcome=raw["outcome"],
            delta=int(raw["delta"]),
            counts_before=Counts(**raw["counts_before"]),
            results_before=str(raw.get("results_before", "")),
        )


@dataclass(frozen=True, slots=True)
class Machine:
    """A channel's full rule state (the snapshot's private ``machine`` field)."""

    session: str = ""
    session_started_at: int = 0
    session_events: int = 0
    counts: Counts = field(default_factory=Counts)
    results: str = ""
    phase: Phase = "ready"
    cooldown_until: int | None = None
    detected_at: int | None = None  # frame time of the detection that started the cooldown
    # the run of equal outcome frames in ``ready``
    frames_outcome: Outcome | None = None
    frames_len: int = 0
    frames_last_at: int | None = None
    frames_min_conf: float = 1.0
    none_run: int = 0  # consecutive `none` frames in ``waiting_for_none``
    last_seq: int = -1  # the newest frame with a verdict: the ordering cursor
    last_error_seq: int = -1  # the newest `error` frame handled (only so that a redelivery changes nothing)
    last_captured_at: int | None = None
    last_event_id: str = ""
    last_event_at: int | None = None
    has_history: bool = False  # any event other than session_started (import needs an empty channel)
    undo: tuple[UndoEntry, ...] = ()
    updated_at: int = 0

    # ------------------------------------------------------------------ (de)serialisation

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "v": 1,
            "session": self.session,
            "session_started_at": self.session_started_at,
            "session_events": self.session_events,
            "counts": self.counts.as_dict(),
            "results": self.results,
            "phase": self.phase,
            "cooldown_until": self.cooldown_until,
            "detected_at": self.detected_at,
            "frames_outcome": self.frames_outcome,
            "frames_len": self.frames_len,
            "frames_last_at": self.frames_last_at,
            "frames_min_conf": self.frames_min_conf,
            "none_run": self.none_run,
            "last_seq": self.last_seq,
            "last_error_seq": self.last_error_seq,
            "last_captured_at": self.last_captured_at,
            "last_event_id": self.last_event_id,
            "last_event_at": self.last_event_at,
            "has_history": self.has_history,
            "undo": [u.as_dict() for u in self.undo],
            "updated_at": self.updated_at,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Machine:
        try:
            raw = json.loads(text)
            return cls(
                session=str(raw["session"]),
                session_started_at=int(raw["session_started_at"]),
                session_events=int(raw.get("session_events", 0)),
                counts=Counts(**raw["counts"]),
                results=str(raw["results"]),
                phase=raw["phase"],
                cooldown_until=raw["cooldown_until"],
                detected_at=raw.get("detected_at"),
                frames_outcome=raw["frames_outcome"],
                frames_len=int(raw["frames_len"]),
                frames_last_at=raw["frames_last_at"],
                frames_min_conf=float(raw["frames_min_conf"]),
                none_run=int(raw["none_run"]),
                last_seq=int(raw["last_seq"]),
                last_error_seq=int(raw.get("last_error_seq", -1)),
                last_captured_at=raw["last_captured_at"],
                last_event_id=str(raw["last_event_id"]),
                last_event_at=raw["last_event_at"],
                has_history=bool(raw["has_history"]),
                undo=tuple(UndoEntry.from_dict(u) for u in raw["undo"]),
                updated_at=int(raw.get("updated_at", 0)),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"state machine snapshot: not valid ({exc})") from None

    # ------------------------------------------------------------------ views

    def snapshot(self) -> StateSnapshot:
        run_outcome, run_len = current_run(self.results)
        return StateSnapshot(
            counts=self.counts,
            session=self.session,
            session_started_at=self.session_started_at,
            phase=self.phase,
            cooldown_until=self.cooldown_until if self.phase == "cooldown" else None,
            last_event_id=self.last_event_id,
            last_outcome=run_outcome,
            last_event_at=self.last_event_at,
            streak_outcome=run_outcome,
            streak=run_len,
            recent=results_outcomes(self.results[-RECENT:]),
            updated_at=self.updated_at,
        )

    def summary(self, ended_at: int | None = None) -> SessionSummary:
        return summarize(
            self.session, self.session_started_at, ended_at, self.counts, self.results, self.session_events
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
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


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
    """Collects the events of one transition and keeps the machine's bookkeeping in step."""

    def __init__(self, machine: Machine, now: int) -> None:
        self.m = machine
        self.now = now
        self.events: list[Event] = []

    def emit(self, machine: Machine, type_: EventType, **kw: Any) -> Machine:
        event_id = next_event_id(machine.last_event_id, self.now)
        event = Event(
            type=type_,
            counts=machine.counts,
            session=machine.session,
            ts=self.now,
            id=event_id,
            **kw,
        )
        self.events.append(event)
        return replace(
            machine,
            last_event_id=event_id,
            last_event_at=self.now,
            session_events=machine.session_events + 1,
            has_history=machine.has_history or type_ != "session_started",
            updated_at=self.now,
        )


def _start_session(em: _Emitter, m: Machine, note: str, request_id: str = "") -> Machine:
    session = session_id_for(em.now)
    if session == m.session:  # two sessions in the same millisecond
        session += "b"
    # The phase carries over: a session started while the last match's banner is still up (cooldown,
    # waiting for `none`) must not count that banner again in the new session.
    m = replace(m, session=session, session_started_at=em.now, session_events=0, counts=Counts(), results="",
                undo=())
    source = "manual" if request_id else "auto"
    return em.emit(m, "session_started", source=source, request_id=request_id, note=note)


def _clear_frames(m: Machine) -> Machine:
    return replace(m, frames_outcome=None, frames_len=0, frames_last_at=None, frames_min_conf=1.0)


def _push_undo(m: Machine, entry: UndoEntry) -> Machine:
    return replace(m, undo=(*m.undo, entry)[-MAX_UNDO:])


# ---------------------------------------------------------------------------- labels


def _ready(m: Machine, label: Label, rules: Rules, em: _Emitter) -> Machine:
    outcome = label.outcome
    if outcome is None or label.confidence < rules.min_confidence:
        return _clear_frames(m)
    t = label.captured_at
    same = (
        m.frames_outcome == outcome
        and m.frames_last_at is not None
        and 0 <= t - m.frames_last_at <= rules.max_gap_ms
    )
    if same:
        m = replace(
            m, frames_len=m.frames_len + 1, frames_last_at=t,
            frames_min_conf=min(m.frames_min_conf, label.confidence),
        )
    else:
        m = replace(m, frames_outcome=outcome, frames_len=1, frames_last_at=t, frames_min_conf=label.confidence)
    if m.frames_len < rules.required_consecutive:
        return m
    confidence = m.frames_min_conf
    before = m.counts
    m = _clear_frames(m)
    m = replace(
        m,
        counts=m.counts.add(outcome, 1),
        results=apply_results(m.results, outcome, 1),
        phase="cooldown",
        cooldown_until=t + rules.cooldown_ms,
        detected_at=t,
        none_run=0,
    )
    m = em.emit(
        m, "detected", source="auto", outcome=outcome, delta=1, confidence=confidence,
        frame_seq=label.seq, captured_at=t,
    )
    return _push_undo(m, UndoEntry(m.last_event_id, "detected", outcome, 1, before, ""))


def _rearm(m: Machine) -> Machine:
    return _clear_frames(replace(m, phase="ready", none_run=0, cooldown_until=None, detected_at=None))


def _waiting(m: Machine, label: Label, rules: Rules, em: _Emitter) -> Machine:
    if rules.required_none == 0:  # (the setting was lowered while this channel was waiting)
        return _ready(_rearm(m), label, rules, em)
    if label.label == "none":
        run = m.none_run + 1
        if run >= rules.required_none:
            return _rearm(m)
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
        return _clear_frames(m) if m.phase == "ready" else m
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
        m = _clear_frames(m)  # frame time went backwards: a streak cannot span it
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
    before = m.counts
    m = replace(
        m, counts=m.counts.add(cmd.outcome, cmd.delta), results=apply_results(m.results, cmd.outcome, cmd.delta)
    )
    # frame_seq: the frame a streamer counted by hand (a near miss), so `owc collect` can label it
    m = em.emit(m, "adjusted", source="manual", outcome=cmd.outcome, delta=cmd.delta,
                request_id=cmd.request_id, note=cmd.note, frame_seq=cmd.frame_seq)
    return _push_undo(m, UndoEntry(m.last_event_id, "adjusted", cmd.outcome, cmd.delta, before, ""))


def _set(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    c = cmd.counts
    if c is None:
        raise Rejected("invalid", "set needs the three counts: victories, defeats and draws")
    for name, value in c.as_dict().items():
        if value < 0:
            raise Rejected("invalid", f"{name} cannot be negative (got {value})")
        if value > MAX_COUNT:
            raise Rejected("invalid", f"{name} cannot exceed {MAX_COUNT} (got {value})")
    before, results_before = m.counts, m.results
    results = m.results
    for outcome in OUTCOMES:  # keep the known results where they still fit
        results = apply_results(results, outcome, c.get(outcome) - m.counts.get(outcome))
    m = replace(m, counts=c, results=results)
    m = em.emit(m, "set", source="manual", request_id=cmd.request_id, note=cmd.note)
    return _push_undo(m, UndoEntry(m.last_event_id, "set", None, 0, before, results_before))


def _undo(m: Machine, cmd: Command, em: _Emitter) -> Machine:
    if not m.undo:
        raise Rejected("rejected", "nothing to undo in this session")
    entry = m.undo[-1]
    m = replace(m, undo=m.undo[:-1])
    outcome: Outcome | None = None
    delta = 0
    if entry.type == "set" or entry.outcome is None:
        m = replace(m, counts=entry.counts_before, results=entry.results_before)
    else:
        outcome, delta = entry.outcome, -entry.delta
        if m.counts.get(outcome) + delta < 0:  # cannot happen while undo pops in order; never hide it
            raise Rejected("rejected", f"cannot undo: the {PLURAL[outcome]} count would go below 0")
        m = replace(m, counts=m.counts.add(outcome, delta), results=apply_results(m.results, outcome, delta))
    if entry.type == "detected":
        # the detection was wrong: re-arm at once so the real result of the match still counts
        m = _clear_frames(replace(m, phase="ready", cooldown_until=None, detected_at=None, none_run=0))
    return em.emit(m, "undone", source="manual", outcome=outcome, delta=delta, request_id=cmd.request_id,
                   note=cmd.note, undoes=entry.event_id)


def _import(m: Machine, cmd: Command, rules: Rules, em: _Emitter) -> Machine:
    if m.has_history:
        raise Rejected("rejected", "import only works into an empty channel: this channel already has events")
    try:
        events = parse_jsonl(cmd.payload)
        check_importable(events)
    except MessageError as exc:
        raise Rejected("invalid", f"cannot import: {exc}") from None
    # re-append the exported events with fresh ids, keeping their references to each other
    id_map: dict[str, str] = {}
    restored: list[Event] = []
    last_id = m.last_event_id
    for ev in events:
        new_id = next_event_id(last_id, em.now)
        last_id = new_id
        if ev.id:
            id_map[ev.id] = new_id
        restored.append(replace(ev, id=new_id, undoes=id_map.get(ev.undoes, ev.undoes)))
    folded = fold_machine(restored, rules, base=m, restore_phase=False)
    em.events.extend(restored)
    folded = replace(folded, undo=())  # an import is a restore point: no undo across it
    return em.emit(folded, "imported", source="manual", request_id=cmd.request_id,
                   note=cmd.note or f"imported {len(restored)} events")


def _on_command(m: Machine, cmd: Command, now: int, rules: Rules, em: _Emitter) -> Machine:
    if cmd.deadline and now > cmd.deadline - rules.deadline_margin_ms:
        late = now - cmd.deadline
        when = f"{late} ms after its deadline" if late > 0 else "too close to its deadline"
        raise Rejected("expired", f"the command arrived {when} and was not applied; try again")
    if cmd.type == "import":
        return _import(m, cmd, rules, em)
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
    raise Rejected("invalid", f"unknown command type {cmd.type!r}")


def transition(machine: Machine, inp: Input, rules: Rules) -> tuple[Machine, list[Event]]:
    """Apply one label or command; return the new machine and the events it produced.

    Raises :class:`Rejected` for a command that cannot be applied (the machine is unchanged).
    """
    em = _Emitter(machine, inp.now)
    if isinstance(inp, LabelInput):
        return _on_label(machine, inp.label, rules, em), em.events
    return _on_command(machine, inp.command, inp.now, rules, em), em.events


# ---------------------------------------------------------------------------- folding the log


def fold_machine(
    events: list[Event], rules: Rules, base: Machine | None = None, restore_phase: bool = True
) -> Machine:
    """Rebuild a machine from an event log (a lost snapshot, or an import).

    With ``restore_phase`` the phase follows from the last detection (cooldown
    from its frame time, then the full wait for `none`), and ``last_seq`` from
    the newest frame the log names, so no frame is counted twice.
    """
    m = base or Machine()
    for ev in events:
        before, results_before = m.counts, m.results
        m = replace(
            m, counts=ev.counts, last_event_id=ev.id or m.last_event_id, last_event_at=ev.ts,
            session_events=m.session_events + 1, updated_at=max(m.updated_at, ev.ts),
            has_history=m.has_history or ev.type != "session_started",
        )
        if ev.type == "session_started":
            m = replace(m, session=ev.session, session_started_at=ev.ts, session_events=1, results="", undo=())
        elif ev.type in ("detected", "adjusted") and ev.outcome is not None:
            m = replace(m, results=apply_results(m.results, ev.outcome, ev.delta))
            m = _push_undo(m, UndoEntry(ev.id, ev.type, ev.outcome, ev.delta, before, ""))
            if ev.type == "detected" and restore_phase and ev.captured_at is not None:
                m = _clear_frames(replace(m, phase="cooldown", cooldown_until=ev.captured_at + rules.cooldown_ms,
                                          detected_at=ev.captured_at, none_run=0))
        elif ev.type == "set":
            results = m.results
            for outcome in OUTCOMES:
                results = apply_results(results, outcome, ev.counts.get(outcome) - before.get(outcome))
            m = replace(m, results=results)
            m = _push_undo(m, UndoEntry(ev.id, "set", None, 0, before, results_before))
        elif ev.type == "undone":
            entry = next((u for u in reversed(m.undo) if u.event_id == ev.undoes), None)
            m = replace(m, undo=tuple(u for u in m.undo if u is not entry))
            if entry is not None and entry.type == "set":
                m = replace(m, results=entry.results_before)
            elif ev.outcome is not None:
                m = replace(m, results=apply_results(m.results, ev.outcome, ev.delta))
            if entry is not None and entry.type == "detected":
                m = _clear_frames(replace(m, phase="ready", cooldown_until=None, detected_at=None, none_run=0))
        elif ev.type == "imported":
            m = replace(m, undo=())
        if restore_phase and ev.frame_seq is not None and ev.source == "auto":
            m = replace(m, last_seq=max(m.last_seq, ev.frame_seq))
        if restore_phase and ev.captured_at is not None:
            m = replace(m, last_captured_at=max(m.last_captured_at or 0, ev.captured_at))
    return m


__all__ = [
    "CommandInput",
    "Input",
    "LabelInput",
    "Machine",
    "Rejected",
    "Rules",
    "UndoEntry",
    "fold_machine",
    "next_event_id",
    "transition",
]
