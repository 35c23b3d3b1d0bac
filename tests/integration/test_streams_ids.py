"""Reclaiming entries whose stream ids sort differently as strings and as numbers."""

from __future__ import annotations

import redis

from services.common.contracts.keys import Keys
from services.common.infra.streams import GroupConsumer


def test_reclaim_counts_deliveries_of_ids_with_multi_digit_sequence_parts(
    redis_client: redis.Redis, keys: Keys
) -> None:
    stream = keys.frames
    ids = [f"5-{n}".encode() for n in range(1, 13)]  # b"5-10" < b"5-9" as strings
    for eid in ids:
        redis_client.xadd(stream, {b"n": eid}, id=eid)
    dead = GroupConsumer(redis_client, stream, "g", "dead", claim_idle_ms=0)
    dead.ensure_group()
    assert len(dead.read_new(100, block_ms=10)) == 12
    alive = GroupConsumer(redis_client, stream, "g", "alive", claim_idle_ms=0, max_deliveries=3)
    got = alive.reclaim(100)
    assert [d.id for d in got] == ids
    assert all(d.deliveries == 2 for d in got)
    assert redis_client.xlen(Keys.dlq(stream)) == 0 and alive.dead_lettered == 0
