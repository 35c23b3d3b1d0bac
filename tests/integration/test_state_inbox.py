"""The state writer's periodic look (reclaim, orphans, health) in one round trip (real redis-server)."""

from __future__ import annotations

import redis

from services.common.contracts.keys import GROUP_STATE, Keys
from services.state.inbox import CONSUMER, Inbox
from tests.support.redis_proc import counting_pipelines
from tests.support.waiting import wait_until


def idle_for(client: redis.Redis, stream: str, ms: int) -> bool:
    rows = client.xpending_range(stream, GROUP_STATE, min="-", max="+", count=10)
    return bool(rows) and all(int(r["time_since_delivered"]) >= ms for r in rows)


def test_the_check_reclaims_a_dead_consumers_entry_and_writes_what_it_is_given_in_one_round_trip(
    redis_client: redis.Redis, keys: Keys
) -> None:
    inbox = Inbox(redis_client, keys, claim_idle_ms=50)
    inbox.ensure_groups()
    assert inbox.read(lambda: 1) == []  # the start: nothing pending on our name, nothing new
    eid = redis_client.xadd(keys.labels, {"seq": "1"})
    redis_client.xreadgroup(GROUP_STATE, "gone", {keys.labels: ">"})  # a consumer that then died
    wait_until(lambda: idle_for(redis_client, keys.labels, 50), timeout=5, message="the entry idle")

    made = counting_pipelines(redis_client)
    inbox.check(0, also=lambda pipe: pipe.set(keys.health("default", "state"), "queued"))
    assert len(made) == 1  # reclaim (both streams), orphans and the caller's commands: one pipeline
    assert redis_client.get(keys.health("default", "state")) == b"queued"

    delivered = inbox.read(lambda: 1)  # handed out once, by the next read
    assert [(d.stream, d.id) for d in delivered] == [(keys.labels, eid)]
    assert inbox.read(lambda: 1) == []
    summary = redis_client.xpending(keys.labels, GROUP_STATE)
    assert [(c["name"], c["pending"]) for c in summary["consumers"]] == [(CONSUMER.encode(), 1)]


def test_the_check_finds_entries_a_deposed_writer_read_under_our_name_and_the_next_read_rereads_them(
    redis_client: redis.Redis, keys: Keys
) -> None:
    inbox = Inbox(redis_client, keys, claim_idle_ms=60_000)
    inbox.ensure_groups()
    assert inbox.read(lambda: 1) == []
    ids = [redis_client.xadd(keys.commands, {"n": str(i)}) for i in range(2)]
    # a deposed writer, frozen, wakes and reads under the shared consumer name before it notices
    redis_client.xreadgroup(GROUP_STATE, CONSUMER, {keys.commands: ">"})
    inbox.check(0)  # not idle long enough to reclaim: found as orphans
    delivered = inbox.read(lambda: 1)
    assert sorted(d.id for d in delivered) == sorted(ids)
    inbox.check(len(ids))  # held now: nothing more to re-read
    assert inbox.read(lambda: 1) == []
