"""A session's summary: what the state service keeps in ``owc:sessions:{channel}`` (a contract).

The state service writes one JSON object per session (``SessionSummary.to_json``)
whenever a session changes, and fills in missing ones when it loads a channel;
the gateway's Sessions card and ``GET …/sessions`` only read them. How a summary
is computed from the event log is the state service's (``services/state/history.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from services.common.messages import Counts, MessageError


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session: str
    started_at: int  # epoch ms
    ended_at: int | None  # None while it is the current session
    counts: Counts
    longest_win_streak: int
    longest_loss_streak: int
    events: int  # events of the session in the log (session_started included)
    by_mode: dict[str, Counts] = field(default_factory=dict)  # per-mode counts (services/state/fold.py)

    @property
    def win_rate(self) -> float | None:
        return self.counts.win_rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            **self.counts.as_dict(),
            "total": self.counts.total,
            "win_rate": self.win_rate,
            "longest_win_streak": self.longest_win_streak,
            "longest_loss_streak": self.longest_loss_streak,
            "events": self.events,
            "by_mode": {mode: counts.as_dict() for mode, counts in self.by_mode.items()},
        }

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> SessionSummary:
        try:
            raw = json.loads(data)
            return cls(
                session=str(raw["session"]),
                started_at=int(raw["started_at"]),
                ended_at=None if raw.get("ended_at") is None else int(raw["ended_at"]),
                counts=Counts(int(raw["victories"]), int(raw["defeats"]), int(raw["draws"])),
                longest_win_streak=int(raw.get("longest_win_streak", 0)),
                longest_loss_streak=int(raw.get("longest_loss_streak", 0)),
                events=int(raw.get("events", 0)),
                by_mode={str(k): Counts(int(v["victories"]), int(v["defeats"]), int(v["draws"]))
                         for k, v in raw.get("by_mode", {}).items()},
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"session summary: not valid ({exc})") from None


__all__ = ["SessionSummary"]
