"""The ``scan_import`` command (``owc scan --import``): which results are new, and the events they become.

Pure. The worker reads the channel's log and calls :func:`only_new` before the
rules; the rules hand the command to :func:`add_results`.

A result already imported carries its key (``services.common.contracts.scanimport.result_key``:
the recording's content hash and the position in it) in its event's
``request_id``. A result is new unless the log holds one of the same recording
less than :data:`MATCH_WINDOW_MS` from it: the same match, even when it was
scanned at another interval (the banner is then found a frame earlier or
later) or read as another outcome by a newer detector. No two matches end
within a minute of each other. Results of one command are not compared with
each other: the scan's own rules (its cooldown) already kept them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from services.common.contracts.messages import Command, Event, MessageError
from services.common.contracts.scanimport import CURRENT, NEW, ScanImport, clock, parse_key
from services.state.machine import Machine
from services.state.rejected import Rejected

MATCH_WINDOW_MS = 60_000


def imported_positions(events: Iterable[Event]) -> dict[str, list[int]]:
    """Hash prefix -> positions (ms) of every result imported into the log so far."""
    out: dict[str, list[int]] = {}
    for event in events:
        key = parse_key(event.request_id) if event.source == "import" else None
        if key is not None:
            out.setdefault(key[0], []).append(key[1])
    return out


def only_new(cmd: Command, events: Iterable[Event], window_ms: int = MATCH_WINDOW_MS) -> Command:
    """``cmd`` with the results the log (or the command itself) already holds taken out.

    A payload that cannot be read is returned as it is: the rules refuse it with the reason.
    """
    try:
        batch = ScanImport.from_json(cmd.payload)
    except MessageError:
        return cmd
    seen = imported_positions(events).get(batch.sha256[:32], [])
    keep = []
    for result in batch.results:
        if all(abs(result.at_ms - at) >= window_ms for at in seen) and result not in keep:
            keep.append(result)
    return replace(cmd, payload=replace(batch, results=tuple(keep)).to_json())


def add_results(m: Machine, cmd: Command, emit: Callable[..., Machine],
                start_session: Callable[[Machine, str], Machine]) -> Machine:
    """Each result an ``adjusted`` +1 with source ``import`` (``emit``: the rules' event emitter), in the
    channel's current session or a new one; raises the rules' ``Rejected`` for a bad payload or another session.
    """
    try:
        batch = ScanImport.from_json(cmd.payload)
    except MessageError as exc:
        raise Rejected("invalid", f"cannot import the scan: {exc}") from None
    if batch.session not in (CURRENT, NEW, m.session):
        raise Rejected("rejected", f"session {batch.session!r} is not this channel's current session "
                       f"({m.session}): a scan is added to the current session or to a new one")
    if batch.results and batch.session == NEW and m.session_events > 1:  # (a session with no event yet is new)
        m = start_session(m, f"scan of {batch.recording}")
    for r in batch.results:
        kw: dict[str, Any] = {"source": "import", "outcome": r.outcome, "delta": 1, "confidence": r.confidence,
                              "request_id": batch.key(r), "note": f"{batch.recording} at {clock(r.at_ms)}"}
        m = emit(m, "adjusted", m.counts.add(r.outcome, 1), **kw)
    return m


__all__ = ["MATCH_WINDOW_MS", "add_results", "imported_positions", "only_new"]
