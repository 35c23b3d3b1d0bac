"""Consumer-group plumbing shared by the stream consumers (inference, state, actions).

Every loop first reclaims idle pending entries (``XAUTOCLAIM``: entries of a
dead consumer), then reads new ones; the caller acks only after its effect is
committed, and entries delivered more than ``max_deliveries`` times are moved
to ``<stream>:dlq`` instead of being retried forever. Inference runs its whole
loop through :meth:`GroupConsumer.poll`; state (labels and commands in one
blocking read) and actions (every channel's event log at once) have one
:class:`GroupConsumer` per stream and call :meth:`~GroupConsumer.reclaim`,
:meth:`~GroupConsumer.read_own_pending` (after a restart),
:meth:`~GroupConsumer.ack` and :meth:`~GroupConsumer.dead_letter` around
:func:`read_group` (one ``XREADGROUP`` over several consumers' streams). Every
read returns :class:`Delivery` entries that name their stream.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.exceptions import NoScriptError, ResponseError

from services.common.contracts.codec import Message, text
from services.common.contracts.keys import Keys
from services.common.contracts.streamids import parse_id

log = logging.getLogger("owc.streams")


def ensure_group(client: redis.Redis, stream: str, group: str, start_id: str = "0") -> None:
    """Create the group (and the stream) unless it exists; only BUSYGROUP is ignored."""
    try:
        client.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass(slots=True)
class Delivery:
    """One stream entry handed out by a consumer group."""

    stream: str
    id: bytes
    fields: dict[bytes, bytes]
    deliveries: int = 1  # how many times the group has handed this entry out

    @property
    def id_str(self) -> str:
        return text(self.id)


@dataclass
class GroupConsumer:
    client: redis.Redis
    stream: str
    group: str
    consumer: str
    claim_idle_ms: int = 5000
    max_deliveries: int = 3
    dlq_maxlen: int = 10_000
    dead_lettered: int = field(default=0, init=False)  # entries this consumer moved to the DLQ
    _cursor: bytes = field(default=b"0-0", init=False)
    _next_claim: float = field(default=0.0, init=False)

    def ensure_group(self) -> None:
        ensure_group(self.client, self.stream, self.group)

    def reclaim(self, count: int) -> list[Delivery]:
        """Take over entries idle for ``claim_idle_ms`` (their consumer is gone).

        Entries past ``max_deliveries`` go to the dead-letter stream and are
        acked; the rest are returned with their delivery count.
        """
        now = time.monotonic()
        if now < self._next_claim:
            return []
        result = self.client.xautoclaim(self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms,
                                        start_id=self._cursor, count=count)
        return self.take_reclaimed(result, now)

    def queue_reclaim(self, pipe: redis.client.Pipeline, count: int) -> None:
        """:meth:`reclaim`'s ``XAUTOCLAIM`` into ``pipe`` (another round trip's), whether it is due or not;
        hand its reply to :meth:`take_reclaimed`."""
        pipe.xautoclaim(self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms,
                        start_id=self._cursor, count=count)

    def take_reclaimed(self, result: Any, now: float | None = None) -> list[Delivery]:
        """What an ``XAUTOCLAIM`` queued by :meth:`queue_reclaim` took over (see :meth:`reclaim`)."""
        now = time.monotonic() if now is None else now
        cursor, claimed = result[0], result[1]
        self._cursor = cursor
        if cursor in (b"0-0", "0-0"):
            # a full pass over the pending list: no need to scan again before
            # another entry could have become idle
            self._next_claim = now + self.claim_idle_ms / 2000.0
        out = self._unless_poison([Delivery(self.stream, eid, fields) for eid, fields in claimed if fields is not None])
        if out:
            log.info("%s: reclaimed %d idle entries of %s", self.consumer, len(out), self.stream)
        return out

    def _unless_poison(self, entries: list[Delivery]) -> list[Delivery]:
        """``entries`` (handed out before) with their delivery counts; those past ``max_deliveries`` are
        dead-lettered instead."""
        if not entries:
            return []
        # stream ids compare as (ms, seq) numbers, not as strings: b"5-10" < b"5-9"
        ordered = sorted((d.id for d in entries), key=parse_id)
        pending = self.client.xpending_range(
            self.stream, self.group, min=ordered[0], max=ordered[-1], count=len(entries) * 4 + 10,
            consumername=self.consumer,
        )
        counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        out: list[Delivery] = []
        for delivery in entries:
            # handed out before, so delivered at least twice; a missing row is never taken for poison
            delivery.deliveries = counts.get(delivery.id, 2)
            if delivery.deliveries > self.max_deliveries:
                self.dead_letter(delivery, f"delivered {delivery.deliveries} times without an ack")
            else:
                out.append(delivery)
        return out

    def read_new(self, count: int, block_ms: int) -> list[Delivery]:
        response = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        if not response:
            return []
        entries = cast(list[tuple[bytes, dict[bytes, bytes] | None]], response[0][1])  # type: ignore[index]
        return [Delivery(self.stream, eid, fields) for eid, fields in entries if fields is not None]

    def read_own_pending(self, limit: int | None = None, *, poison: bool = False) -> list[Delivery]:
        """Every entry pending on this consumer name (read before a restart under the same name, never acked).

        With ``limit``, one read of at most that many. Entries trimmed from the
        stream meanwhile (no fields left) are acked and left out. With
        ``poison``, entries handed out more than ``max_deliveries`` times are
        dead-lettered (the service died on them that often), the rest carry
        their delivery count.
        """
        out: list[Delivery] = []
        start: bytes | str = "0"
        while True:
            response = self.client.xreadgroup(self.group, self.consumer, {self.stream: start}, count=limit or 500)
            entries = cast(list[tuple[bytes, Any]], response[0][1]) if response else []  # type: ignore[index]
            if not entries:
                break
            gone = [eid for eid, fields in entries if not fields]
            if gone:
                self.client.xack(self.stream, self.group, *gone)
            out += [Delivery(self.stream, eid, fields) for eid, fields in entries if fields]
            if limit is not None:
                break
            start = entries[-1][0]
        return self._unless_poison(out) if poison else out

    def poll(self, count: int, block_ms: int) -> list[Delivery]:
        """Reclaimed entries first; otherwise new ones (blocking up to ``block_ms``)."""
        reclaimed = self.reclaim(count)
        if reclaimed:
            return reclaimed
        return self.read_new(count, block_ms)

    def ack(self, *ids: bytes) -> None:
        if ids:
            self.client.xack(self.stream, self.group, *ids)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Park a poison entry in ``<stream>:dlq`` (with the reason) and ack it."""
        fields = dict(delivery.fields)
        fields[b"dlq_reason"] = reason.encode()
        fields[b"dlq_source_id"] = delivery.id
        fields[b"dlq_consumer"] = self.consumer.encode()
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(Keys.dlq(self.stream), fields, maxlen=self.dlq_maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.xack(self.stream, self.group, delivery.id)
        pipe.execute()
        self.dead_lettered += 1
        log.warning("%s: moved %s to %s: %s", self.consumer, delivery.id_str, Keys.dlq(self.stream), reason)


def xadd_message(
    client: redis.Redis | redis.client.Pipeline, stream: str, msg: Message, *, maxlen: int | None = None, id: str = "*"
) -> Any:
    """``XADD`` a message's fields to ``stream``; ``maxlen`` trims approximately (``MAXLEN ~``)."""
    return client.xadd(stream, msg.to_fields(), id=id, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]


def read_group(consumers: Sequence[GroupConsumer], count: int, block: int | None = None) -> list[Delivery]:
    """One ``XREADGROUP`` of new entries over several consumers' streams (one group, one consumer name),
    in the order Redis gave them."""
    if not consumers:
        return []
    first = consumers[0]
    streams = {c.stream: ">" for c in consumers}
    response = first.client.xreadgroup(first.group, first.consumer, streams, count=count, block=block)  # type: ignore[arg-type]
    out: list[Delivery] = []
    for stream, entries in cast(list[tuple[bytes, list[tuple[bytes, Any]]]], response or []):
        name = text(stream)
        out += [Delivery(name, eid, fields) for eid, fields in entries if fields is not None]
    return out


# The group's numbers (XINFO GROUPS) and the entries after its last-delivered-id, counted without sending
# them (the frames stream carries images: fetching them only to count them would move megabytes per check),
# in one round trip. Bounded by ARGV[2]. Returns {} without the stream or the group, else
# {pending, last-delivered-id, lag or -1, counted}.
_BACKLOG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = {}
  for i = 1, #info, 2 do g[info[i]] = info[i + 1] end
  if g['name'] == ARGV[1] then
    local last = g['last-delivered-id'] or '0-0'
    local counted = #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', tonumber(ARGV[2]))
    local lag = g['lag']
    if type(lag) ~= 'number' then lag = -1 end
    return {g['pending'] or 0, last, lag, counted}
  end
end
return {}
"""


@dataclass(frozen=True, slots=True)
class GroupBacklog:
    """How far a consumer group is behind on a stream, from numbers that stay true.

    ``undelivered`` is counted: the entries after the group's
    ``last-delivered-id``, up to ``limit`` (``capped`` when there may be more).
    ``reported_lag`` is what ``XINFO GROUPS`` says. It is *not* used for
    decisions: Redis before 7.2.4 does not persist the group's read counter
    across an AOF rewrite (redis/redis#12898), so after a rewrite and a restart
    ``lag`` counts every entry read since the rewrite as still undelivered.
    """

    exists: bool
    pending: int = 0  # delivered, not yet acknowledged
    undelivered: int = 0
    capped: bool = False
    reported_lag: int | None = None
    last_delivered_id: str = ""

    @property
    def total(self) -> int:
        return self.undelivered + self.pending

    @property
    def lag_lies(self) -> bool:
        """Redis' own ``lag`` claims more undelivered entries than there are."""
        return self.reported_lag is not None and not self.capped and self.reported_lag > self.undelivered


_BACKLOG_SHA = hashlib.sha1(_BACKLOG.encode()).hexdigest()


def group_backlog(client: redis.Redis, stream: str, group: str, limit: int = 10_000) -> GroupBacklog:
    """The backlog of ``group`` on ``stream`` (``exists=False`` without the stream or the group); one round trip
    (``EVALSHA``: the script's text goes to Redis once, not with every check)."""
    bound = max(1, limit)
    try:
        raw = cast(list[Any], client.evalsha(_BACKLOG_SHA, 1, stream, group, bound + 1))
    except NoScriptError:  # a new or restarted Redis: EVAL caches it
        raw = cast(list[Any], client.eval(_BACKLOG, 1, stream, group, bound + 1))
    if not raw:
        return GroupBacklog(False)
    pending, last, lag, counted = int(raw[0]), text(raw[1]), int(raw[2]), int(raw[3])
    return GroupBacklog(
        exists=True,
        pending=pending,
        undelivered=min(counted, bound),
        capped=counted > bound,
        reported_lag=None if lag < 0 else lag,
        last_delivered_id=last,
    )
