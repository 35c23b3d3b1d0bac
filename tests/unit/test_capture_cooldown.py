"""In its channel's cooldown capture takes a frame a second (services/capture/cooldown.py)."""

from __future__ import annotations

from services.capture.cooldown import COOLDOWN_INTERVAL_S, RESUME_BEFORE_S, cooling, skip_frame, wait_after
from services.capture.publisher import cooldown_end

END = 100_000  # the cooldown ends at this frame time (ms)
RESUME = END - round(RESUME_BEFORE_S * 1000)


def test_the_slow_part_is_the_cooldown_but_its_last_second() -> None:
    assert cooling(END, 0)
    assert cooling(END, RESUME - 1)
    assert not cooling(END, RESUME)
    assert not cooling(END, END + 5)
    assert not cooling(None, 0)


def test_a_replay_leaves_out_the_frames_within_a_second_of_the_last_one_taken() -> None:
    taken = 50_000
    assert skip_frame(END, taken, taken + 250)
    assert skip_frame(END, taken, taken + 750)
    assert not skip_frame(END, taken, taken + 1000)
    assert not skip_frame(END, taken, taken + 999)  # frame times are rounded to the ms
    # the usual rate from a second before the end, whenever the last frame was
    assert not skip_frame(END, RESUME - 250, RESUME)
    assert not skip_frame(END, RESUME - 250, RESUME + 250)
    # outside a cooldown, or before the first frame: every frame
    assert not skip_frame(None, taken, taken + 250)
    assert not skip_frame(END, None, taken + 250)


def test_live_capture_waits_a_second_but_never_past_the_resume_time() -> None:
    assert wait_after(None, 50_000, 0.25) == 0.0
    assert wait_after(END, 50_000, 0.25) == COOLDOWN_INTERVAL_S
    assert wait_after(END, RESUME - 600, 0.25) == 0.6  # cut short: the usual rate at the resume time
    assert wait_after(END, RESUME - 200, 0.25) == 0.0  # less than an interval left: the usual interval
    assert wait_after(END, END + 1000, 0.25) == 0.0  # over (the snapshot not yet rewritten)


def test_the_cooldown_end_is_read_from_the_snapshot_fields_only_in_cooldown() -> None:
    assert cooldown_end(b"cooldown", b"1796616015113") == 1796616015113
    assert cooldown_end(b"ready", b"1796616015113") is None  # an undo re-armed: the stale end means nothing
    assert cooldown_end(b"waiting_for_none", None) is None
    assert cooldown_end(None, None) is None  # no state service has written the channel
    assert cooldown_end(b"cooldown", b"") is None
    assert cooldown_end(b"cooldown", b"soon") is None
