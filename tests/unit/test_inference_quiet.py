"""A worker's read slows down when no frame comes (group.QuietPacedPoll), and is back at once with a frame."""

from __future__ import annotations

from typing import Any, cast

from services.common.infra.streams import Delivery, GroupConsumer
from services.inference.group import QUIET_AFTER_S, QUIET_BLOCK_MS, QUIET_CLAIM_S, QuietPacedPoll


class Recorder:
    """Records what the poll asked of the consumer group; hands out ``frames`` on the next read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.frames: list[Delivery] = []

    def poll(self, count: int, block_ms: int) -> list[Delivery]:
        self.calls.append(("poll", block_ms))
        return self._take()

    def reclaim(self, count: int) -> list[Delivery]:
        self.calls.append(("reclaim", 0))
        return []

    def read_new(self, count: int, block_ms: int) -> list[Delivery]:
        self.calls.append(("read", block_ms))
        return self._take()

    def _take(self) -> list[Delivery]:
        out, self.frames = self.frames, []
        return out


def make(block_ms: int = 500) -> tuple[QuietPacedPoll, Recorder, list[float]]:
    now = [100.0]
    rec = Recorder()
    poller = QuietPacedPoll(cast(GroupConsumer, cast(Any, rec)), block_ms, clock=lambda: now[0])
    return poller, rec, now


def test_a_new_worker_reads_at_the_usual_pace_reclaim_included() -> None:
    poller, rec, now = make()
    poller.poll(8)
    now[0] += QUIET_AFTER_S - 0.1
    poller.poll(8)
    assert rec.calls == [("poll", 500), ("poll", 500)]


def test_quiet_reads_block_longer_and_scan_for_reclaims_rarely() -> None:
    poller, rec, now = make()
    now[0] += QUIET_AFTER_S
    assert poller.quiet()
    for _ in range(5):
        poller.poll(8)
        now[0] += QUIET_BLOCK_MS / 1000
    assert rec.calls[0] == ("reclaim", 0)
    assert rec.calls[1:] == [("read", QUIET_BLOCK_MS)] * 5
    now[0] += QUIET_CLAIM_S
    rec.calls.clear()
    poller.poll(8)
    assert rec.calls == [("reclaim", 0), ("read", QUIET_BLOCK_MS)]


def test_a_frame_ends_the_quiet_period_at_once() -> None:
    poller, rec, now = make()
    now[0] += 60
    rec.frames = [Delivery("frames", b"1-0", {b"k": b"v"})]
    assert len(poller.poll(8)) == 1
    rec.calls.clear()
    poller.poll(8)
    assert rec.calls == [("poll", 500)]


def test_a_longer_block_ms_setting_is_kept_when_quiet() -> None:
    poller, rec, now = make(block_ms=5000)
    now[0] += QUIET_AFTER_S
    poller.poll(8)
    assert rec.calls[-1] == ("read", 5000)


def test_no_reclaim_scan_while_a_fresh_summary_found_nothing_pending() -> None:
    poller, rec, now = make()
    assert poller.wants_summary()
    poller.summary(0, now[0])
    assert not poller.wants_summary()
    now[0] += 0.8  # nothing handed out before the summary can be idle for claim_idle_ms (1.5 s) yet
    poller.poll(8)
    assert rec.calls == [("read", 500)]
    assert poller.wants_summary()  # ... and the next commit asks again


def test_the_scan_runs_when_the_summary_is_too_old_or_found_entries_pending() -> None:
    poller, rec, now = make()
    poller.summary(0, now[0])
    now[0] += 1.5  # an entry handed out just after that summary may be claimable now
    poller.poll(8)
    poller.summary(2, now[0])  # entries pending (another worker's, maybe dead): the scan as before
    poller.poll(8)
    assert rec.calls == [("poll", 500), ("poll", 500)]
