"""In its channel's cooldown capture takes a frame a second, not one an interval (pure: times are passed in).

After a count the state service ignores every frame of the channel until the cooldown ends (``cooldown_until``,
in frame time: ``services/state/rules.py``): such a frame only moves its cursor, nothing can be counted from it.
Capture learns the cooldown's end with every frame it publishes (the publish script reads the channel's state
snapshot, ``services/capture/publisher.py``: no round trip of its own) and meanwhile takes a frame every
:data:`COOLDOWN_INTERVAL_S` instead of every ``capture.interval_ms`` — at the defaults a quarter of the
screenshots OBS renders, and of every later hop's work (Redis, inference, state) — and its usual rate again from
:data:`RESUME_BEFORE_S` before the end, so the frames that re-arm the channel (``state.required_none``) come at
the usual pace. The frames still flow (the state's cursor moves, the admin page shows a live pipeline). An undo,
a reset or a new session ends a cooldown at once: the snapshot says so and the next frame taken, at most
:data:`COOLDOWN_INTERVAL_S` later, brings the usual rate back. Burst hints are not followed in a cooldown (a
confirming frame confirms nothing there).
"""

from __future__ import annotations

COOLDOWN_INTERVAL_S = 1.0  # in a cooldown, a frame at most this often
RESUME_BEFORE_S = 1.0  # the usual rate again this long before the cooldown ends


def cooling(cooldown_until: int | None, at_ms: int) -> bool:
    """Whether a frame taken at ``at_ms`` (frame time) falls in the slow part of a cooldown ending at
    ``cooldown_until`` (None: not in one)."""
    return cooldown_until is not None and at_ms < cooldown_until - RESUME_BEFORE_S * 1000


def skip_frame(cooldown_until: int | None, last_taken_ms: int | None, at_ms: int) -> bool:
    """Whether to leave out the frame due at ``at_ms``: in the slow part of a cooldown and less than
    :data:`COOLDOWN_INTERVAL_S` after the last frame taken (at ``last_taken_ms``)."""
    if last_taken_ms is None or not cooling(cooldown_until, at_ms):
        return False
    return at_ms - last_taken_ms < COOLDOWN_INTERVAL_S * 1000 - 1  # 1 ms: frame times are rounded to ms


def wait_after(cooldown_until: int | None, taken_ms: int, interval_s: float) -> float:
    """The least time from the slot just taken (its frame at ``taken_ms``) to the next one: 0 (the usual
    interval) outside the slow part of a cooldown; in it :data:`COOLDOWN_INTERVAL_S`, cut short so the usual
    rate is back :data:`RESUME_BEFORE_S` before the cooldown ends."""
    if cooldown_until is None:
        return 0.0
    left_s = (cooldown_until - RESUME_BEFORE_S * 1000 - taken_ms) / 1000
    if left_s <= interval_s:
        return 0.0
    return min(COOLDOWN_INTERVAL_S, left_s)
