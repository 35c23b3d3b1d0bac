"""What the state writer reads: commands and labels, under one consumer name shared by every leader.

A new leader first re-reads the entries its predecessor read but never
acknowledged (nothing to wait for), then reads both streams in one blocking
read, so a command never waits on labels. The writer's periodic look
(:meth:`Inbox.check`: every 2 s on a live feed, every ``QUIET_CHECK_S`` when
quiet — nothing read for ``QUIET_AFTER_S``) reclaims idle entries, looks for
orphans (an entry left pending by a deposed writer: a new leader re-reads them
all at once) and writes the writer's health, in one round trip; what it
reclaimed is handed out by the next read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from services.common.contracts.codec import text
from services.common.contracts.keys import GROUP_STATE, Keys
from services.common.infra.streams import Delivery, GroupConsumer, read_group

log = logging.getLogger("owc.state")

CONSUMER = "state-writer"  # the same for every leader: a new one picks up the old one's pending entries
READ_COUNT = 200
QUIET_AFTER_S = 5.0  # nothing read this long: the writer's reads, scans and checks slow down
QUIET_CHECK_S = 10.0  # quiet: how often idle entries are reclaimed and orphans looked for


class Inbox:
    def __init__(self, client: redis.Redis, keys: Keys, claim_idle_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.labels = GroupConsumer(client, keys.labels, GROUP_STATE, CONSUMER, claim_idle_ms=claim_idle_ms)
        self.commands = GroupConsumer(client, keys.commands, GROUP_STATE, CONSUMER, claim_idle_ms=claim_idle_ms)
        self.reread = True  # the next read starts with the entries pending on CONSUMER
        self._last_read = time.monotonic()  # when a read last returned entries
        self._reclaimed: list[Delivery] = []  # taken over by the last check, handed out by the next read
        self._groups_ready = False

    def ensure_groups(self) -> None:
        if not self._groups_ready:
            self.labels.ensure_group()
            self.commands.ensure_group()
            self._groups_ready = True

    def check(self, held: int, also: Callable[[redis.client.Pipeline], None] | None = None) -> None:
        """The periodic look, in one round trip: reclaim idle entries (``XAUTOCLAIM``, both streams; what it
        takes over is handed out by the next :meth:`read`), look for orphans and whatever ``also`` queues into
        the same pipeline (the writer's health records).

        Orphans: entries pending on our consumer name beyond the ``held`` ones we hold. A deposed writer that
        woke up (a frozen process, a network split) may have read entries under the shared consumer name
        before it noticed; the next read re-reads them all instead of waiting for XAUTOCLAIM's idle time.
        """
        pipe = self.client.pipeline(transaction=False)
        if also is not None:
            also(pipe)
        first = len(pipe)
        for consumer in (self.commands, self.labels):
            consumer.queue_reclaim(pipe, READ_COUNT)
        for stream in (self.keys.commands, self.keys.labels):
            pipe.xpending(stream, GROUP_STATE)
        replies = pipe.execute()[first:]
        now = time.monotonic()
        self._reclaimed += self.commands.take_reclaimed(replies[0], now) + self.labels.take_reclaimed(replies[1], now)
        self._orphans(replies[2:], held)

    def _orphans(self, summaries: list[Any], held: int) -> None:
        pending = 0
        for summary in summaries:
            for consumer in summary.get("consumers") or []:
                if text(consumer["name"]) == CONSUMER:
                    pending += int(consumer["pending"])
        if pending > held:
            log.info("state: %d entries pending on %s that this writer does not hold", pending - held, CONSUMER)
            self.reread = True

    def quiet(self) -> bool:
        return time.monotonic() - self._last_read >= QUIET_AFTER_S

    def read(self, block_ms: Callable[[], int]) -> list[Delivery]:
        """Deliveries (each names its stream): pending ones first, then reclaimed ones, else new ones."""
        out = self._read(block_ms)
        if out:
            self._last_read = time.monotonic()
        return out

    def _read(self, block_ms: Callable[[], int]) -> list[Delivery]:
        if self.reread:
            pending = self.commands.read_own_pending() + self.labels.read_own_pending()
            self.reread = False
            self._reclaimed = []  # reclaimed entries are pending on our name: re-read with the rest
            if pending:
                log.info("state: re-reading %d entries the previous writer had not acknowledged", len(pending))
                return pending
        if self._reclaimed:  # taken over by the last check
            reclaimed, self._reclaimed = self._reclaimed, []
            return reclaimed
        return read_group([self.commands, self.labels], count=READ_COUNT, block=block_ms())
