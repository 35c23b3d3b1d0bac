"""Which results of a ``scan_import`` command the channel does not have yet (pure; the worker reads the log).

A result already imported carries its key (``services.common.scanimport.result_key``:
the recording's content hash and the position in it) in its event's
``request_id``. A result is new unless the log holds one of the same recording
less than :data:`MATCH_WINDOW_MS` from it: the same match, even when it was
scanned at another interval (the banner is then found a frame earlier or
later) or read as another outcome by a newer detector. No two matches end
within a minute of each other. Results of one command are not compared with
each other: the scan's own rules (its cooldown) already kept them apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from services.common.messages import Command, Event, MessageError
from services.common.scanimport import ScanImport, parse_key

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


__all__ = ["MATCH_WINDOW_MS", "imported_positions", "only_new"]
