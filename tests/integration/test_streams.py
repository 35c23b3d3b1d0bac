from __future__ import annotations

import redis

from services.common.contracts.keys import Keys
from services.common.infra.redisio import check_version, parse_version
from services.common.infra.streams import Delivery, GroupConsumer, ensure_group, group_backlog, read_group
from tests.support.waiting import wait_until


def test_ensure_group_is_idempotent_and_creates_the_stream(redis_client: redis.Redis, keys: Keys) -> None:
    ensure_group(redis_client, keys.frames, "g")
    ensure_group(redis_client, keys.frames, "g")  # BUSYGROUP ignored
    assert redis_client.exists(keys.frames)
    assert [g["name"] for g in redis_client.xinfo_groups(keys.frames)] == [b"g"]


def test_reclaims_a_dead_consumers_entries_then_dead_letters_poison(redis_client: redis.Redis, keys: Keys) -> None:
    dead = GroupConsumer(redis_client, keys.frames, "g", "dead", claim_idle_ms=100, max_deliveries=2)
    dead.ensure_group()
    ids = [redis_client.xadd(keys.frames, {b"n": str(i).encode()}) for i in range(3)]
    assert [d.id for d in dead.read_new(10, 10)] == ids  # read, never acked: "dies"

    alive = GroupConsumer(redis_client, keys.frames, "g", "alive", claim_idle_ms=100, max_deliveries=2)
    assert alive.poll(10, 10) == []  # not idle long enough yet

    def claim() -> list[Delivery]:
        alive._next_claim = 0  # don't wait for the scan throttle in a test
        return alive.poll(10, 10)

    got = wait_until(claim, timeout=5, message="idle entries to be reclaimed")
    assert [d.id for d in got] == ids and all(d.deliveries == 2 for d in got)
    alive.ack(got[0].id)

    # the second consumer "dies" too: the next claim exceeds max_deliveries -> DLQ
    third = GroupConsumer(redis_client, keys.frames, "g", "third", claim_idle_ms=100, max_deliveries=2)

    def dead_lettered() -> list[tuple[bytes, dict[bytes, bytes]]]:
        third._next_claim = 0
        assert third.poll(10, 10) == []
        return redis_client.xrange(Keys.dlq(keys.frames))  # type: ignore[no-any-return]

    dlq = wait_until(lambda: len(dead_lettered()) == 2 and dead_lettered(), timeout=5)
    assert [f[b"dlq_source_id"] for _, f in dlq] == ids[1:]
    assert all(b"delivered 3 times" in f[b"dlq_reason"] for _, f in dlq)
    assert redis_client.xpending(keys.frames, "g")["pending"] == 0


def test_one_read_over_several_streams_and_a_restart_re_reads_its_own_pending(
    redis_client: redis.Redis, keys: Keys,
) -> None:
    a, b = (GroupConsumer(redis_client, s, "g", "me", max_deliveries=2) for s in (keys.labels, keys.commands))
    for c in (a, b):
        c.ensure_group()
    ids = {s: redis_client.xadd(s, {b"n": b"1"}) for s in (keys.labels, keys.commands)}
    got = read_group([a, b], count=10, block=10)  # read, never acked: the process "dies"
    assert sorted((d.stream, d.id) for d in got) == sorted(ids.items())
    assert read_group([a, b], count=10, block=10) == []  # nothing new

    # the restarted process, same consumer name: its pending entries, with the stream they came from
    assert [(d.stream, d.id, d.fields) for d in a.read_own_pending()] == [(keys.labels, ids[keys.labels], {b"n": b"1"})]
    again = b.read_own_pending(poison=True)  # handed out twice now: still within max_deliveries
    assert [(d.id, d.deliveries) for d in again] == [(ids[keys.commands], 2)]
    redis_client.xtrim(keys.labels, maxlen=0)  # trimmed meanwhile: acked and left out
    assert a.read_own_pending() == [] and redis_client.xpending(keys.labels, "g")["pending"] == 0
    # the process died on it once more: a poison entry, dead-lettered instead of handed out
    assert b.read_own_pending(poison=True) == [] and b.dead_lettered == 1
    assert [f[b"dlq_source_id"] for _, f in redis_client.xrange(Keys.dlq(keys.commands))] == [ids[keys.commands]]


def test_version_check(redis_client: redis.Redis) -> None:
    assert parse_version(check_version(redis_client)) >= (6, 2)
    assert parse_version("7.0.15") == (7, 0, 15)
    assert parse_version("6.0.9") < (6, 2, 0)


def test_group_backlog_counts_pending_and_undelivered_in_one_round_trip(redis_client: redis.Redis, keys: Keys) -> None:
    assert not group_backlog(redis_client, keys.frames, "g").exists  # no stream
    redis_client.xadd(keys.frames, {"n": 0})
    assert not group_backlog(redis_client, keys.frames, "g").exists  # no such group
    ensure_group(redis_client, keys.frames, "other")
    ensure_group(redis_client, keys.frames, "g")  # from the start: six entries
    for n in range(1, 6):
        redis_client.xadd(keys.frames, {"n": n})
    redis_client.xreadgroup("g", "c", {keys.frames: ">"}, count=2)  # 2 pending, 4 undelivered
    b = group_backlog(redis_client, keys.frames, "g")
    assert (b.exists, b.pending, b.undelivered, b.capped, b.total) == (True, 2, 4, False, 6)
    assert b.last_delivered_id == redis_client.xrange(keys.frames)[1][0].decode()
    lag = {g["name"]: g.get("lag") for g in redis_client.xinfo_groups(keys.frames)}[b"g"]
    assert b.reported_lag == lag  # None before Redis 7
    capped = group_backlog(redis_client, keys.frames, "g", limit=2)
    assert (capped.undelivered, capped.capped) == (2, True)
