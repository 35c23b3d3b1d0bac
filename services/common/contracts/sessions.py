"""A session's summary: what the state service keeps in ``owc:sessions:{channel}`` (a contract).

The state service writes one JSON object per session (``SessionSummary.to_json``)
whenever a session changes, and fills in missing ones when it loads a channel;
the gateway's Sessions card and ``GET …/sessions`` only read them. How a summary
is computed from the event log is the state service's (``services/state/history.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.contracts.codec import JsonRecord
from services.common.contracts.messages import Counts


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session: str
    started_at: int  # epoch ms
    ended_at: int | None = None  # None while it is the current session
    counts: Counts = field(default_factory=Counts)
    longest_win_streak: int = 0
    longest_loss_streak: int = 0
    events: int = 0  # events of the session in the log (session_started included)
    by_mode: dict[str, Counts] = field(default_factory=dict)  # per-mode counts (services/state/fold.py)

    @property
    def win_rate(self) -> float | None:
        return self.counts.win_rate

    def as_dict(self) -> dict[str, Any]:
        """The stored form (and the API's): the counts flattened, with their total and win rate."""
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
        return SUMMARY_JSON.dumps(self).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> SessionSummary:
        return SUMMARY_JSON.loads(data)


def _nest_counts(raw: dict[str, Any]) -> dict[str, Any]:
    """The dataclass's shape from the stored one (``total`` and ``win_rate`` follow from the counts)."""
    return {**raw, "counts": {name: raw[name] for name in ("victories", "defeats", "draws")}}


# no ``v``: summaries have been stored without one; the fields added since the first ones read as their defaults
SUMMARY_JSON = JsonRecord(SessionSummary, "session summary", required=("session", "started_at"),
                          upgrade=_nest_counts, as_dict=SessionSummary.as_dict, versioned=False)


__all__ = ["SessionSummary"]
