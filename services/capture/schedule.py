"""When capture takes its next frame: a drift-free slot schedule that a burst may pull forward (pure).

Slot ``k`` is due at ``start + k*interval``. A *burst* (inference saw a
candidate and asks for the confirming frame now, :mod:`services.common.infra.burst`)
takes the next slot early instead of adding one: slot ``k`` may be taken as
soon as slot ``k-1``'s own time has come. So

* a burst is never an extra frame, only an earlier one; the slot after it
  is due at its usual time;
* in any window of ``W`` seconds capture takes at most ``W/interval + 2``
  frames, bursts or not (slot ``k`` is never taken before slot ``k-1``'s
  time): never more OBS load than the regular rate over a minute (240
  frames at 250 ms, +2 at the window's edges), and so at most a few bursts
  a second (≤ 6 in any second at 250 ms; one per banner in practice).

A burst frame is never taken less than :data:`BURST_MIN_GAP_S` after the
previous one: two screenshots within a game frame or two could show the
same picture (a one-frame glitch would confirm itself), and the reader of
the first frame takes about that long anyway, so waiting costs nothing.

A hint about frame ``s`` is only worth a burst while ``s`` is the last frame
taken: if a newer frame was taken since, that one is already the
confirmation (:func:`burst_wanted`).
"""

from __future__ import annotations

from dataclasses import dataclass

BURST_MIN_GAP_S = 0.05  # a burst frame at least this long after the previous frame (3 frames at 60 fps)


def burst_wanted(hint_seq: int, last_seq: int | None) -> bool:
    """Whether a hint about frame ``hint_seq`` still asks for a frame (no newer one was taken since)."""
    return last_seq is None or hint_seq >= last_seq


@dataclass
class SlotSchedule:
    interval: float  # seconds
    next_due: float  # the next slot's own time (monotonic seconds)
    burst: bool = False  # a burst was asked for: the next slot is due as early as allowed
    last_taken: float = float("-inf")  # when the previous frame was taken (monotonic seconds)
    min_gap: float = BURST_MIN_GAP_S

    @classmethod
    def starting(cls, now: float, interval: float) -> SlotSchedule:
        return cls(interval, now)

    def due(self) -> float:
        """When the next frame is to be taken."""
        if self.burst:
            # not before the previous slot's own time (never two slots in one interval), nor right after a frame
            return min(self.next_due, max(self.next_due - self.interval, self.last_taken + self.min_gap))
        return self.next_due

    def ask_burst(self) -> None:
        self.burst = True

    def taken(self, started: float, now: float, wait_after: float = 0.0) -> int:
        """The next slot was taken (``started``: when the frame was asked for; ``now``: when it finished;
        ``wait_after``: a backoff the source asks for). Returns the slots overrun meanwhile, which are
        skipped (never queued)."""
        self.burst = False
        self.last_taken = started
        self.next_due += max(self.interval, wait_after)
        if now <= self.next_due:
            return 0
        missed = int((now - self.next_due) // self.interval) + 1
        self.next_due += missed * self.interval
        return missed
