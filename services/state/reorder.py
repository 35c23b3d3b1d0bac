"""Deliver a channel's labels in ``seq`` order (pure, no clock: pass arrival times in).

Several inference workers finish frames out of order. A label whose ``seq``
is the next one expected goes straight through; a later one waits up to
``window_ms`` (from its arrival) for the missing ones, then the gap is
skipped (the missing frame was dropped as stale, or its label is lost).
Labels at or below the expected ``seq`` (redeliveries, stragglers that missed
the window) are released at once: the rules ignore them, the caller acks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class ReorderBuffer(Generic[T]):
    window_ms: int
    next_seq: int | None = None  # None: nothing seen yet (the first label also waits the window)
    _pending: dict[int, list[tuple[int, T]]] = field(default_factory=dict)  # seq -> [(arrival, item)]
    skipped: int = 0  # seq numbers skipped so far

    def __len__(self) -> int:
        return sum(len(v) for v in self._pending.values())

    def push(self, seq: int, item: T, arrival_ms: int) -> None:
        self._pending.setdefault(seq, []).append((arrival_ms, item))

    def _oldest_arrival(self) -> int:
        return min(a for items in self._pending.values() for a, _ in items)

    def pop(self, now_ms: int) -> list[tuple[int, T]]:
        """Release every label that may go now, in ``seq`` order."""
        out: list[tuple[int, T]] = []
        while self._pending:
            lowest = min(self._pending)
            if self.next_seq is not None and lowest <= self.next_seq:
                out.extend((lowest, item) for _, item in self._pending.pop(lowest))
                self.next_seq = max(self.next_seq, lowest + 1)
                continue
            if now_ms - self._oldest_arrival() < self.window_ms:
                break
            if self.next_seq is not None:
                self.skipped += lowest - self.next_seq
            self.next_seq = lowest
        return out

    def wait_ms(self, now_ms: int) -> int | None:
        """How long until :meth:`pop` could release something (None: nothing is waiting)."""
        if not self._pending:
            return None
        return max(0, self.window_ms - (now_ms - self._oldest_arrival()))
