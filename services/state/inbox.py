"""What the state writer reads: commands and labels, under one consumer name shared by every leader.

A new leader first re-reads the entries its predecessor read but never
acknowledged (nothing to wait for), then reclaims idle ones, then reads
both streams in one blocking read, so a command never waits on labels.
Quiet (nothing read for ``QUIET_AFTER_S``: no frames, no commands), the
reclaim scan runs every ``QUIET_CHECK_S``: an entry left pending by a deposed
writer is also found by :meth:`Inbox.check_orphans`, and a new leader re-reads
them all at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

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
        self._next_quiet_claim = 0.0
        self._groups_ready = False

    def ensure_groups(self) -> None:
        if not self._groups_ready:
            self.labels.ensure_group()
            self.commands.ensure_group()
            self._groups_ready = True

    def check_orphans(self, held: int) -> None:
        """Re-read entries pending on our consumer name that we do not hold (``held`` of them).

        A deposed writer that woke up (a frozen process, a network split) may
        have read entries under the shared consumer name before it noticed;
        they would otherwise wait for XAUTOCLAIM's idle time.
        """
        pending = 0
        pipe = self.client.pipeline(transaction=False)  # one round trip for both streams
        for stream in (self.keys.commands, self.keys.labels):
            pipe.xpending(stream, GROUP_STATE)
        for summary in pipe.execute():
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
            if pending:
                log.info("state: re-reading %d entries the previous writer had not acknowledged", len(pending))
                return pending
        now = time.monotonic()
        if not self.quiet() or now >= self._next_quiet_claim:
            self._next_quiet_claim = now + QUIET_CHECK_S
            reclaimed = self.commands.reclaim(READ_COUNT) + self.labels.reclaim(READ_COUNT)
            if reclaimed:
                return reclaimed
        return read_group([self.commands, self.labels], count=READ_COUNT, block=block_ms())
