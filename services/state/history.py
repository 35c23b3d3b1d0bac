"""Pure helpers over a channel's event log: session summaries, the import check.

The state service's own: it keeps the summaries in ``owc:sessions:{channel}``
(``services/common/contracts/sessions.py`` is the record; the gateway only reads it).
No Redis, no clock, nothing built at import time. A session's counts and
results are the machine's (``services/state/fold.py`` folds the log); the
results string is described in ``services/state/machine.py``. The export
format is ``services/common/contracts/export.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from services.common.contracts.export import CSV_COLUMNS
from services.common.contracts.messages import EVENT_TYPES, OUTCOMES, Counts, Event, MessageError
from services.common.contracts.modes import is_stored_mode
from services.common.contracts.sessions import SessionSummary
from services.state.fold import apply
from services.state.machine import Machine, longest_run

# --------------------------------------------------------------------------- sessions


def summarize(m: Machine, ended_at: int | None = None) -> SessionSummary:
    """The summary of ``m``'s session (``ended_at=None``: it is the current one)."""
    return SessionSummary(
        session=m.session,
        started_at=m.session_started_at,
        ended_at=ended_at,
        counts=m.counts,
        longest_win_streak=longest_run(m.results, "victory"),
        longest_loss_streak=longest_run(m.results, "defeat"),
        events=m.session_events,
        by_mode=dict(m.by_mode),
    )


def summarize_sessions(events: Iterable[Event]) -> list[SessionSummary]:
    """Every session of a log, oldest first; the last one has ``ended_at=None``."""
    out: list[SessionSummary] = []
    m: Machine | None = None
    for event in events:
        if m is None:  # a log that does not start with a session_started: its first event opens one
            m = Machine(session=event.session, session_started_at=event.ts)
        elif event.type == "session_started":
            out.append(summarize(m, ended_at=event.ts))
        m = apply(m, event)
    if m is not None:
        out.append(summarize(m))
    return out


def session_updates(before: Machine, after: Machine, events: list[Event]) -> dict[str, SessionSummary]:
    """The session summaries a transition changes (the one it ended, the current one, imported ones)."""
    out: dict[str, SessionSummary] = {}
    starts = [e for e in events if e.type == "session_started"]
    if starts and before.session and before.session != starts[0].session:
        out[before.session] = summarize(before, ended_at=starts[0].ts)
    if any(e.type == "imported" for e in events):
        for summary in summarize_sessions(events):
            out[summary.session] = summary
    if after.session:
        out[after.session] = summarize(after)
    return out


def _delta_step(counts: Counts, event: Event) -> Counts:
    """The counts after ``event`` from its delta where it has one (its ``counts`` field otherwise)."""
    if event.type == "session_started":
        return Counts()
    if event.type in ("detected", "adjusted", "undone") and event.outcome is not None:
        return counts.add(event.outcome, event.delta)
    return event.counts  # set, imported, undone-of-a-set: the counts are given


def fold_counts(events: Iterable[Event]) -> Counts:
    """The current session's counts, folded from the deltas of the log (not its ``counts`` fields).

    A check on the log, not the machine's fold: where it disagrees with the
    counts the events carry, the log was edited by hand.
    """
    counts = Counts()
    for event in events:
        counts = _delta_step(counts, event)
    return counts


def session_events(events: Iterable[Event], session: str) -> list[Event]:
    return [e for e in events if e.session == session]


# --------------------------------------------------------------------------- import


def _event_from_dict(raw: Any, line_no: int) -> Event:
    if not isinstance(raw, dict):
        raise MessageError(f"line {line_no}: expected a JSON object")
    fields: dict[str, str] = {}
    for key in CSV_COLUMNS:
        if key == "id":
            continue
        value = raw.get(key)
        fields[key] = "" if value is None else str(value)
    if fields["type"] not in EVENT_TYPES:
        raise MessageError(f"line {line_no}: unknown event type {fields['type']!r}")
    if fields["outcome"] and fields["outcome"] not in OUTCOMES:
        raise MessageError(f"line {line_no}: unknown outcome {fields['outcome']!r}")
    try:
        return Event.from_fields(fields, id=str(raw.get("id") or ""))
    except MessageError as exc:
        raise MessageError(f"line {line_no}: {exc}") from None


def parse_jsonl(text: str) -> list[Event]:
    """Events from an exported JSONL; raises :class:`MessageError` naming the bad line."""
    out: list[Event] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MessageError(f"line {i}: invalid JSON ({exc.msg})") from None
        out.append(_event_from_dict(raw, i))
    return out


def check_importable(events: Sequence[Event]) -> None:
    """Raise :class:`MessageError` unless the events form a log that can be restored."""
    if not events:
        raise MessageError("the file holds no events")
    if events[0].type != "session_started":
        raise MessageError("the first event must be a session_started (export whole sessions)")
    counts = Counts()
    for i, event in enumerate(events, start=1):
        if not is_stored_mode(event.mode):  # (the admin page shows it; exports only hold stored names)
            raise MessageError(f"event {i}: {event.mode!r} is not a valid mode name")
        counts = _delta_step(counts, event)
        if min(counts.victories, counts.defeats, counts.draws) < 0:
            raise MessageError(f"event {i}: the counts would go below 0")
        if counts != event.counts:
            raise MessageError(
                f"event {i} ({event.type}): its counts {event.counts.as_dict()} do not follow "
                f"from the events before it ({counts.as_dict()})"
            )
