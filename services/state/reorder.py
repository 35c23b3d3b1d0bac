"""Deliver a channel's labels in ``seq`` order (pure, no clock: pass arrival times in).

Several inference workers finish frames out of order. A label whose ``seq``
is the next one expected goes straight through; a later one waits up to
``window_ms`` (from its arrival) for the missing ones, then the gap is
skipped (the missing frame was dropped as stale, or its label is lost).
Labels at or below the expected ``seq`` (redeliveries, stragglers that missed
the window) are released at once: the rules ignore them, the caller acks them.

Skipping a gap moves the cursor, and everything below it is then "old": one
label with a bogus huge ``seq`` would switch a channel off. So:

* a label without a verdict (``error``: the frame could not be read, and
  neither, perhaps, its fields) never moves the cursor; it is released in
  turn but the gap before it stays open for the labels that fill it;
* a label ``seq`` is *suspect* when it is above ``ceiling`` (the highest
  ``seq`` capture has allocated for the channel, ``INCR owc:seq:{ch}``: no
  real frame can be above it) or, when the ceiling is not known, more than
  ``max_jump`` ahead of the cursor with no other label near it to back it
  up. A suspect label is never released: it goes to :meth:`take_suspects`
  for the caller to log, count and acknowledge. A real jump (capture went on
  while frames were trimmed unread: after a restart ``seq`` continues from
  the counter, it never resets) is below the ceiling, or followed by more
  labels, and goes through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# Without a known ceiling, a jump this large needs a second label to back it up (1000 frames:
# about 4 minutes at the default 4 frames a second).
MAX_JUMP = 1000


@dataclass
class ReorderBuffer(Generic[T]):
    window_ms: int
    next_seq: int | None = None  # None: nothing seen yet (the first label also waits the window)
    max_jump: int = MAX_JUMP
    # seq -> [(arrival, has a verdict, item)]
    _pending: dict[int, list[tuple[int, bool, T]]] = field(default_factory=dict)
    _suspects: list[tuple[int, T]] = field(default_factory=list)
    _last_suspect: int | None = None
    skipped: int = 0  # seq numbers skipped so far
    suspect: int = 0  # labels set aside as suspect so far

    def __len__(self) -> int:
        return sum(len(v) for v in self._pending.values())

    def push(self, seq: int, item: T, arrival_ms: int, verdict: bool = True) -> None:
        """Queue a label; ``verdict=False`` for labels that say nothing about the picture (``error``)."""
        self._pending.setdefault(seq, []).append((arrival_ms, verdict, item))

    def _oldest_arrival(self) -> int:
        return min(a for items in self._pending.values() for a, _, _ in items)

    def _is_suspect(self, seq: int, ceiling: int | None) -> bool:
        if ceiling is not None:
            return seq > ceiling
        expected = self.next_seq if self.next_seq is not None else 1
        if seq - expected <= self.max_jump:
            return False
        backed = any(seq < other <= seq + self.max_jump for other in self._pending) or (
            self._last_suspect is not None and 0 < seq - self._last_suspect <= self.max_jump
        )
        return not backed

    def would_jump(self, now_ms: int) -> bool:
        """True when :meth:`pop` has a jump to decide (the caller then passes the ceiling)."""
        if not self._pending or now_ms - self._oldest_arrival() < self.window_ms:
            return False
        return self.next_seq is None or max(self._pending) > self.next_seq

    def pop(self, now_ms: int, ceiling: int | None = None) -> list[tuple[int, T]]:
        """Release every label that may go now, in ``seq`` order.

        ``ceiling``: the highest ``seq`` allocated for the channel, when known.
        """
        out: list[tuple[int, T]] = []
        while self._pending:
            lowest = min(self._pending)
            if self.next_seq is not None and lowest <= self.next_seq:
                out.extend((lowest, item) for _, _, item in self._pending.pop(lowest))
                self.next_seq = max(self.next_seq, lowest + 1)
                continue
            if now_ms - self._oldest_arrival() < self.window_ms:
                break
            if self._is_suspect(lowest, ceiling):
                items = self._pending.pop(lowest)
                self._suspects.extend((lowest, item) for _, _, item in items)
                self.suspect += len(items)
                self._last_suspect = lowest
                continue
            if not any(verdict for _, verdict, _ in self._pending[lowest]):
                # released in turn, but it does not close the gap before it
                out.extend((lowest, item) for _, _, item in self._pending.pop(lowest))
                continue
            if self.next_seq is not None:
                self.skipped += lowest - self.next_seq
            self.next_seq = lowest
        return out

    def take_suspects(self) -> list[tuple[int, T]]:
        """The labels set aside as suspect since the last call (never released by :meth:`pop`)."""
        out, self._suspects = self._suspects, []
        return out

    def wait_ms(self, now_ms: int) -> int | None:
        """How long until :meth:`pop` could release something (None: nothing is waiting)."""
        if not self._pending:
            return None
        return max(0, self.window_ms - (now_ms - self._oldest_arrival()))
