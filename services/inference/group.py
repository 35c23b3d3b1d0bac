"""The inference group's housekeeping: idle consumers, the lag gauges, malformed frames' identity.

Separate from the worker's loop: these read the ``frames`` stream's group
(``XINFO``), never a frame's picture.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.exceptions import ResponseError

from services.common.contracts.codec import text
from services.common.contracts.keys import CHANNEL_RE, GROUP_INFERENCE, Keys
from services.common.contracts.messages import Label
from services.common.infra.streams import Delivery, GroupConsumer, group_backlog
from services.inference import metrics

log = logging.getLogger("owc.inference")

LAG_COUNT_LIMIT = 64  # entries counted inside Redis for the lag gauge (each one is a frame)
# Every worker start (a restart gets a new pid, hence a new name) leaves a consumer in the
# group. Those idle this long with nothing pending are removed: a live worker polls at least
# every block_ms (<= 10 s), and a wrongly removed consumer is recreated by its next read.
PRUNE_IDLE_MS = 30 * 60 * 1000
# Quiet (no frame for QUIET_AFTER_S: capture waits for OBS, or is stopped), a worker's blocking read waits up
# to QUIET_BLOCK_MS (a frame still wakes it at once: this only bounds shutdown) and its reclaim scan runs
# every QUIET_CLAIM_S instead of every claim_idle_ms / 2. A frame another worker left pending meanwhile is
# older than max_frame_age_ms by then and only dropped; with frames flowing this worker gets some too
# (blocked readers are served in turn), and the first one ends the quiet period.
QUIET_AFTER_S = 5.0
QUIET_BLOCK_MS = 2000
QUIET_CLAIM_S = 10.0


@dataclass
class QuietPacedPoll:
    """A worker's read: reclaimed frames first, else new ones (``GroupConsumer.poll``), paced down when quiet.

    With frames flowing, the reclaim scan (an ``XAUTOCLAIM`` round trip every ``claim_idle_ms / 2``) is left
    out while the group had nothing pending: the worker adds an ``XPENDING`` summary to a batch's commit
    (:meth:`wants_summary`, :meth:`summary`, no round trip of its own). A summary that found no entry pending
    at time T proves nothing can be claimed before T + ``claim_idle_ms`` (an entry handed out after T has been
    idle less than that), so the scan waits for the next summary; one that found entries pending leaves the
    scan as it was.
    """

    consumer: GroupConsumer
    block_ms: int
    clock: Callable[[], float] = time.monotonic
    claim_idle_ms: int = 1500
    _last_frame: float = field(default=0.0, init=False)
    _next_claim: float = field(default=0.0, init=False)
    _none_pending_at: float = field(default=float("-inf"), init=False)  # the last summary that found none
    _summary_at: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self._last_frame = self.clock()  # a worker starts at the usual pace: it may be taking over a dead one's frames

    def quiet(self) -> bool:
        return self.clock() - self._last_frame >= QUIET_AFTER_S

    def wants_summary(self) -> bool:
        """Whether the next commit should carry an ``XPENDING`` summary (one every ``claim_idle_ms / 2``);
        ask just before the commit is sent, and hand its answer to :meth:`summary` with this clock's time of
        asking."""
        return self.clock() - self._summary_at >= self.claim_idle_ms / 2000.0

    def summary(self, pending: int, asked_at: float) -> None:
        self._summary_at = asked_at
        if pending == 0:
            self._none_pending_at = asked_at

    def _nothing_claimable(self) -> bool:
        return self.clock() - self._none_pending_at < self.claim_idle_ms / 1000.0

    def poll(self, count: int) -> list[Delivery]:
        if not self.quiet():
            if self._nothing_claimable():
                deliveries = self.consumer.read_new(count, self.block_ms)
            else:
                deliveries = self.consumer.poll(count, self.block_ms)
        else:
            deliveries = []
            now = self.clock()
            if now >= self._next_claim:
                self._next_claim = now + QUIET_CLAIM_S
                deliveries = self.consumer.reclaim(count)
            deliveries = deliveries or self.consumer.read_new(count, max(self.block_ms, QUIET_BLOCK_MS))
        if deliveries:
            self._last_frame = self.clock()
        return deliveries


def commit(pipe: redis.client.Pipeline, keys: Keys, poller: QuietPacedPoll) -> None:
    """Send a batch's commit; when one is due, with the ``XPENDING`` summary its poller's reclaim scan waits
    for (after the acks: what is still pending)."""
    summary = poller.wants_summary()
    if summary:
        pipe.xpending(keys.frames, GROUP_INFERENCE)
    asked_at = poller.clock()
    replies = pipe.execute()
    if summary:
        poller.summary(int(replies[-1]["pending"]), asked_at)


def prune_consumers(client: redis.Redis, keys: Keys, keep: str) -> list[str]:
    """Remove long-idle consumers with nothing pending (workers that are gone), never ``keep``."""
    try:
        consumers = client.xinfo_consumers(keys.frames, GROUP_INFERENCE)
    except ResponseError:
        return []
    removed = []
    for info in consumers:
        name = text(info.get("name"))
        if name == keep or int(info.get("pending") or 0) or int(info.get("idle") or 0) < PRUNE_IDLE_MS:
            continue
        client.xgroup_delconsumer(keys.frames, GROUP_INFERENCE, name)
        removed.append(name)
    if removed:
        log.info("removed %d idle consumers with nothing pending: %s", len(removed), ", ".join(removed))
    return removed


def refresh_lag(client: redis.Redis, keys: Keys) -> None:
    """Set the lag and pending gauges from the group's backlog."""
    try:
        backlog = group_backlog(client, keys.frames, GROUP_INFERENCE, limit=LAG_COUNT_LIMIT)
    except ResponseError:
        return
    if not backlog.exists:
        return
    # counted, not XINFO's lag (Redis < 7.2.4 overstates it for good after an AOF rewrite); past the
    # counting limit, Redis' figure bounded by the stream's length
    lag = backlog.undelivered
    if backlog.capped and backlog.reported_lag is not None:
        lag = max(lag, min(backlog.reported_lag, int(client.xlen(keys.frames))))
    metrics.LAG.set(lag)
    metrics.PENDING.set(backlog.pending)


def salvage_identity(fields: dict[bytes, bytes]) -> tuple[str, int, int] | None:
    """Channel, seq and captured_at of a malformed frame, when they can be read."""
    try:
        channel = fields[b"channel"].decode("utf-8")
        seq = int(fields[b"seq"])
    except (KeyError, UnicodeDecodeError, ValueError):
        return None
    if seq < 0 or not CHANNEL_RE.fullmatch(channel):
        return None
    try:
        captured_at = max(0, int(fields.get(b"captured_at", b"0")))
    except ValueError:
        captured_at = 0
    return channel, seq, captured_at


def error_label(channel: str, seq: int, captured_at: int, reason: str, *, model: str, worker: str) -> Label:
    """The ``error`` label that stands for a frame that could not be classified."""
    return Label(
        channel=channel,
        seq=seq,
        captured_at=captured_at,
        label="error",
        confidence=0.0,
        probs={},
        model=model,
        worker=worker,
        infer_ms=0.0,
        error=reason[:500],
    )
