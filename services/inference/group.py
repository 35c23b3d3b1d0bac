"""The inference group's housekeeping: idle consumers, the lag gauges, malformed frames' identity.

Separate from the worker's loop: these read the ``frames`` stream's group
(``XINFO``), never a frame's picture.
"""

from __future__ import annotations

import logging

import redis
from redis.exceptions import ResponseError

from services.common.contracts.codec import text
from services.common.contracts.keys import CHANNEL_RE, GROUP_INFERENCE, Keys
from services.common.contracts.messages import Label
from services.common.infra.streams import group_backlog
from services.inference import metrics

log = logging.getLogger("owc.inference")

LAG_COUNT_LIMIT = 64  # entries counted inside Redis for the lag gauge (each one is a frame)
# Every worker start (a restart gets a new pid, hence a new name) leaves a consumer in the
# group. Those idle this long with nothing pending are removed: a live worker polls at least
# every block_ms (<= 10 s), and a wrongly removed consumer is recreated by its next read.
PRUNE_IDLE_MS = 30 * 60 * 1000


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
