"""Pure timing decisions of the action lanes: when an action is due, in which order, and which pending
entry a correction takes back inside the stream delay. No Redis, no clock: times are passed in.

The stream delay (``actions.stream_delay_s``) holds every out-of-band action until viewers can see
the banner: an event's delayed actions are due at *its time + the delay*. A correction (an undo, or
a −N by hand) that arrives while the result it corrects is still waiting replaces it: neither is sent.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from services.actions.formatting import EventContext
from services.common.contracts import action_records
from services.common.contracts.messages import Event
from services.common.contracts.streamids import parse_id, parse_id_or


def event_time_ms(ctx: EventContext) -> int:
    """When the event happened: its ``ts`` (the state service's clock), else its stream id's time."""
    if ctx.event.ts > 0:
        return int(ctx.event.ts)
    return parse_id_or(ctx.event.id, (0, 0))[0]


def due_ms(ctx: EventContext, delayed: bool, delay_s: float) -> int:
    """When an action may act on the event: at once, or once viewers see the banner (event time + delay)."""
    return event_time_ms(ctx) + (round(delay_s * 1000) if delayed else 0)


def order(key: str) -> tuple[str, int, int, str]:
    """Sort key of a queued ``channel/stream-id`` (a log's order; test ids after them, by text)."""
    channel, _, eid = key.rpartition("/")
    if "-" in eid:
        with contextlib.suppress(ValueError):
            ms, seq = parse_id(eid)
            return channel, ms, seq, ""
    return channel, 1 << 62, 0, eid


@dataclass(frozen=True)
class Pending:
    """An entry of an action's queue: the event, when it is due and whether it was asked for by hand."""

    ctx: EventContext
    due: int
    force: bool = False  # `owc actions retry|test`: act even if a record says it was done

    @property
    def key(self) -> str:
        return self.ctx.idempotency_key

    def to_json(self) -> str:
        record = action_records.event_record(self.ctx.channel, self.ctx.event, self.ctx.test)
        return json.dumps({**record, "due": self.due, "force": self.force}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Pending:
        """Raises ``ValueError``/``KeyError``/``TypeError``/``MessageError`` on a broken record."""
        data: dict[str, Any] = json.loads(raw)
        event = Event.from_fields(data["fields"], id=str(data["id"]))
        ctx = EventContext(str(data["channel"]), event, bool(data.get("test", False)))
        return cls(ctx, int(data["due"]), bool(data.get("force", False)))


def is_result(event: Event) -> bool:
    """A result counted up (detected, or +N by hand)."""
    return event.type in ("detected", "adjusted") and event.outcome is not None and event.delta > 0


def may_correct(event: Event) -> bool:
    """Whether the event can take a waiting result back (an undo, or a −N by hand)."""
    return (event.type == "undone" and bool(event.undoes)) or (
        event.type == "adjusted" and event.outcome is not None and event.delta < 0)


def correction_target(correction: EventContext, pending: list[Pending]) -> str | None:
    """The queued entry ``correction`` takes back, if it is one and that entry is still waiting.

    - an ``undone`` event takes back the event it undoes;
    - a −N by hand (``adjusted``, delta < 0) takes back the latest waiting +N of the same outcome.

    Only while the corrected result was still inside its delay when the correction happened (its
    due time is later than the correction's time); tests and hand-sent retries are never taken back.
    """
    e = correction.event
    if correction.test:
        return None
    at = event_time_ms(correction)
    same = [p for p in pending if p.ctx.channel == correction.channel and not p.force and not p.ctx.test
            and p.due > at]
    if e.type == "undone" and e.undoes:
        target = f"{correction.channel}/{e.undoes}"
        return target if any(p.key == target for p in same) else None
    if e.type == "adjusted" and e.outcome is not None and e.delta < 0:
        matches = [p for p in same if is_result(p.ctx.event) and p.ctx.event.outcome == e.outcome
                   and p.ctx.event.delta == -e.delta and order(p.key) < order(correction.idempotency_key)]
        return max(matches, key=lambda p: order(p.key)).key if matches else None
    return None
