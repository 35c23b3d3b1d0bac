"""The export format of a channel's event log: JSON Lines (what ``owc state import`` reads back) and CSV.

A contract: the gateway's ``GET …/export`` and ``owc state export`` write it,
the state service's import parses it (``services/state/history.py``). Pure.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from services.common.contracts.messages import Event

CSV_COLUMNS = (
    "id", "type", "outcome", "delta", "victories", "defeats", "draws", "session", "source",
    "confidence", "frame_seq", "captured_at", "request_id", "note", "undoes", "ts",
    "mode",  # last: columns added later go at the end, so spreadsheets reading by position keep working
)


def to_jsonl(events: Iterable[Event]) -> str:
    """One JSON object per line (``Event.as_dict``); the format ``import`` reads back."""
    return "".join(json.dumps(e.as_dict(), separators=(",", ":"), ensure_ascii=False) + "\n" for e in events)


def to_csv(events: Iterable[Event]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in events:
        row = e.as_dict()
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return buf.getvalue()


__all__ = ["CSV_COLUMNS", "to_csv", "to_jsonl"]
