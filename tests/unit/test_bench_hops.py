"""The e2e bench's latency budget per hop (pure): the hops add up to banner onset -> browser."""

from __future__ import annotations

import pytest

from tools.bench.hops import HOPS, ReplayClock, hop_rows, onset_at, summarize

CLOCK = ReplayClock(start_ms=0, frame_ms=250.0)  # the replay's frame i at i * 250 ms


def test_the_onset_is_the_banner_s_first_frame_by_time_not_by_seq() -> None:
    starts = [40, 104]  # replay frame indexes where banners begin
    assert onset_at(42 * 250, starts, CLOCK) == 40 * 250
    assert onset_at(40 * 250, starts, CLOCK) == 40 * 250
    assert onset_at(110 * 250, starts, CLOCK) == 104 * 250
    assert onset_at(40 * 250 + 60, starts, CLOCK) == 40 * 250  # a burst frame between frames 40 and 41
    assert onset_at(39 * 250 + 60, starts, CLOCK) == 40 * 250  # one between 39 and 40 shows frame 40


def test_hops_add_up_to_onset_to_browser() -> None:
    # seqs 7 and 8: capture left frames out in an earlier cooldown, so seq and frame index differ
    frames = {7: (10_000, 10_004), 8: (10_060, 10_061)}  # onset (replay frame 40), then a burst frame 60 ms later
    labels = {7: (10_070, 45.0), 8: (10_118, 46.0)}
    event = {"frame_seq": 8, "ts": 10_120}
    rows = hop_rows(frames, labels, [{"t": 10_128, "event": event}], [40], CLOCK)
    assert rows == [{
        "confirm_wait": 60, "capture": 1, "queue": 11.0, "inference": 46.0, "state": 2, "sse": 8, "total": 128,
        "frames_after_onset": 1, "onset_frame": {"capture": 4, "queue": 21.0, "inference": 45.0},
    }]
    assert sum(rows[0][hop] for hop in HOPS) == rows[0]["total"]
    summary = summarize(rows)
    assert summary["detections"] == 1 and summary["total_ms"]["p95"] == 128
    assert summary["confirm_wait_ms"]["share_of_mean_total"] == pytest.approx(60 / 128, abs=0.001)
    assert summary["onset_frame"]["inference_ms"]["p50"] == 45.0


def test_a_detection_whose_frames_are_gone_is_left_out() -> None:
    assert hop_rows({}, {}, [{"t": 1, "event": {"frame_seq": 5, "ts": 0}}], [], CLOCK) == []
    assert summarize([]) == {"detections": 0}
