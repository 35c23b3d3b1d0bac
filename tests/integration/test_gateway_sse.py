"""SSE: snapshot on connect, one message per event, resume without gap or duplicate, one reader per channel."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from services.common.config.settings import load_settings
from services.common.contracts.keys import Keys
from tests.support.gateway import (
    GatewayThread,
    ServiceProcess,
    SSEReader,
    post_json,
    start_gateway_process,
    start_state,
)
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def sse_prefix() -> str:
    return f"sse{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def state_proc(
    redis_server: RedisServer, sse_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    proc = start_state(tmp_path_factory.mktemp("state"), redis_server.url, sse_prefix)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gateway(
    redis_server: RedisServer, sse_prefix: str, state_proc: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    settings = load_settings(
        overrides={
            "redis.url": redis_server.url,
            "redis.prefix": sse_prefix,
            "gateway.sse_ping_s": 0.3,
        }
    ).settings
    gw = GatewayThread(settings, tmp_path_factory.mktemp("cfg")).start()
    yield gw
    gw.stop()


@pytest.fixture
def channel(redis_server: RedisServer, sse_prefix: str) -> str:
    name = f"c{uuid.uuid4().hex[:8]}"
    client = redis_server.client()
    client.sadd(Keys(sse_prefix).channels, name)
    client.close()
    return name


def events_url(gw: GatewayThread, ch: str) -> str:
    return f"{gw.url}/api/v1/channels/{ch}/events"


def adjust(gw: GatewayThread, ch: str, outcome: str = "victory", delta: int = 1) -> str:
    r = post_json(gw.url, f"/api/v1/channels/{ch}/adjust", {"outcome": outcome, "delta": delta})
    assert r.status_code == 200, r.text
    return str(r.json()["event_id"])


def test_snapshot_then_one_message_per_event(gateway: GatewayThread, channel: str) -> None:
    first = adjust(gateway, channel)
    reader = SSEReader(events_url(gateway, channel)).start()
    try:
        snap = reader.next()
        assert snap.id == first  # the snapshot carries the id of the last event it includes
        assert snap.data["victories"] == 1 and snap.data["event"] is None
        assert snap.data["health"] is not None and snap.data["channel"] == channel
        ids = [adjust(gateway, channel, "defeat"), adjust(gateway, channel, "draw", 2)]
        got = [reader.next_with_id(), reader.next_with_id()]
        assert [g.id for g in got] == ids
        assert got[0].data["event"]["type"] == "adjusted" and got[0].data["event"]["outcome"] == "defeat"
        assert (got[1].data["victories"], got[1].data["defeats"], got[1].data["draws"]) == (1, 1, 2)
        assert got[1].data["last_event_id"] == ids[1]
    finally:
        reader.close()


def test_keepalive_comments(gateway: GatewayThread, channel: str) -> None:
    reader = SSEReader(events_url(gateway, channel)).start()
    try:
        reader.next()
        wait_until(lambda: "ping" in reader.comments, timeout=5, message="a keep-alive comment")
    finally:
        reader.close()


def test_resume_with_last_event_id_replays_exactly_the_missed_events(
    gateway: GatewayThread, channel: str, redis_server: RedisServer, sse_prefix: str
) -> None:
    adjust(gateway, channel)
    reader = SSEReader(events_url(gateway, channel)).start()
    seen = reader.next().id
    assert seen
    reader.close()
    wait_until(lambda: gateway.hubs.client_count(channel) == 0, timeout=10, message="the server to drop the client")

    missed = [adjust(gateway, channel, o) for o in ("defeat", "victory", "draw")]
    resumed = SSEReader(events_url(gateway, channel), headers={"Last-Event-ID": seen}).start()
    try:
        snap = resumed.next()
        assert snap.id is None and snap.data["event"] is None  # current status, no id: no effect on resume
        replay = [resumed.next_with_id() for _ in missed]
        assert [r.id for r in replay] == missed
        assert [r.data["event"]["outcome"] for r in replay] == ["defeat", "victory", "draw"]
        assert [r.data["victories"] for r in replay] == [1, 2, 2]
        # then live, without repeating anything
        live = adjust(gateway, channel, "victory")
        nxt = resumed.next_with_id()
        assert nxt.id == live
        # the ids are the event log's own
        client = redis_server.client()
        log_ids = [i.decode() for i, _ in client.xrange(Keys(sse_prefix).events(channel))]
        client.close()
        assert log_ids[-5:] == [seen, *missed, live]
    finally:
        resumed.close()


def test_resume_via_query_parameter_and_bad_ids(gateway: GatewayThread, channel: str) -> None:
    first = adjust(gateway, channel)
    second = adjust(gateway, channel, "defeat")
    r = SSEReader(f"{events_url(gateway, channel)}?lastEventId={first}").start()
    try:
        r.next()
        assert r.next_with_id().id == second
    finally:
        r.close()
    # a garbage Last-Event-ID is ignored (a fresh snapshot), never a 500 or a closed stream
    bad = SSEReader(events_url(gateway, channel), headers={"Last-Event-ID": "not-an-id"}).start()
    try:
        snap = bad.next()
        assert snap.id == second and bad.status_code == 200
    finally:
        bad.close()


def test_events_missed_while_connecting_are_not_lost(
    gateway: GatewayThread, channel: str, redis_server: RedisServer, sse_prefix: str
) -> None:
    """Many readers connecting while events are appended: each sees every event once, in order."""
    readers = [SSEReader(events_url(gateway, channel)).start() for _ in range(3)]
    try:
        sent = [adjust(gateway, channel, "victory") for _ in range(6)]
        for reader in readers:
            snap = reader.next()
            got: list[str] = [snap.id] if snap.id else []
            while not got or got[-1] != sent[-1]:
                ev = reader.next()
                assert ev.id is not None
                got.append(ev.id)
            # the snapshot may already include the first events; after it, no gap and no duplicate
            client = redis_server.client()
            log_ids = [i.decode() for i, _ in client.xrange(Keys(sse_prefix).events(channel))]
            client.close()
            assert got == log_ids[len(log_ids) - len(got) :], (got, log_ids)
    finally:
        for reader in readers:
            reader.close()


def test_one_reader_per_channel_and_cleanup(gateway: GatewayThread, channel: str) -> None:
    other = f"{channel}x"
    client = redis.Redis.from_url(gateway.settings.redis.url or "")
    client.sadd(Keys(gateway.settings.redis.prefix).channels, other)
    client.close()
    adjust(gateway, channel)  # the channel's first command also starts its session (two events)
    readers = [SSEReader(events_url(gateway, channel)).start() for _ in range(5)]
    readers += [SSEReader(events_url(gateway, other)).start() for _ in range(2)]
    try:
        for r in readers:
            r.next()
        hubs = gateway.hubs
        assert hubs.client_count(channel) == 5 and hubs.client_count(other) == 2
        assert len([c for c in hubs.hubs if c in (channel, other)]) == 2  # one reader task per channel
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert "owc_gateway_sse_clients" in metrics and "owc_gateway_sse_readers" in metrics
        event_id = adjust(gateway, channel)
        for r in readers[:5]:
            assert r.next_with_id().id == event_id
    finally:
        for r in readers:
            r.close()
    wait_until(
        lambda: channel not in gateway.hubs.hubs and other not in gateway.hubs.hubs,
        timeout=10,
        message="the readers to stop after the last client left",
    )


def test_unknown_channel_stream_is_404(gateway: GatewayThread) -> None:
    r = httpx.get(f"{gateway.url}/api/v1/channels/nope-{uuid.uuid4().hex[:6]}/events")
    assert r.status_code == 404


def test_legacy_events_path_streams_the_default_channel(gateway: GatewayThread) -> None:
    adjust(gateway, "default", "draw")
    reader = SSEReader(f"{gateway.url}/events").start()
    try:
        snap = reader.next()
        assert snap.data["channel"] == "default"
        event_id = adjust(gateway, "default", "draw")
        assert reader.next_with_id().id == event_id
    finally:
        reader.close()


def test_sse_survives_a_gateway_restart_with_resume(tmp_path: Path, gateway: GatewayThread, channel: str) -> None:
    """A second gateway (another process in real life) serves the resume of a client of the first."""
    first = adjust(gateway, channel)
    other = GatewayThread(gateway.settings, tmp_path).start()
    try:
        missed = adjust(gateway, channel, "defeat")
        r = SSEReader(events_url(other, channel), headers={"Last-Event-ID": first}).start()
        try:
            r.next()
            assert r.next_with_id().id == missed
        finally:
            r.close()
    finally:
        other.stop()


def test_owc_gateway_stops_promptly_with_sse_clients_connected(
    tmp_path: Path, redis_server: RedisServer, sse_prefix: str, state_proc: ServiceProcess
) -> None:
    """`owc gateway` as a subprocess: serves, then on SIGTERM ends its open streams and exits 0."""
    proc, url = start_gateway_process(tmp_path, redis_server.url, sse_prefix)
    readers = [SSEReader(f"{url}/api/v1/channels/default/events").start() for _ in range(3)]
    try:
        for r in readers:
            r.next()
        started = time.monotonic()
        assert proc.stop() == 0, proc.log()[-2000:]
        assert time.monotonic() - started < 5, "graceful shutdown waited for the SSE clients"
        for r in readers:  # each stream ended (the client will reconnect elsewhere)
            with pytest.raises(EOFError):
                while True:
                    r.next(timeout=5)
    finally:
        for r in readers:
            r.close()
        if proc.alive():
            proc.stop(kill=True)
    assert "Traceback" not in proc.log()


def test_streams_recover_after_a_redis_restart(tmp_path: Path, own_redis: RedisServer) -> None:
    prefix = f"rr{uuid.uuid4().hex[:6]}"
    state = start_state(tmp_path / "state", own_redis.url, prefix)
    settings = load_settings(
        overrides={"redis.url": own_redis.url, "redis.prefix": prefix, "gateway.sse_ping_s": 0.5}
    ).settings
    gw = GatewayThread(settings, tmp_path).start()
    try:
        first = adjust(gw, "default")
        reader = SSEReader(events_url(gw, "default")).start()
        assert reader.next().id == first
        own_redis.restart()
        # the open stream either survives (its channel reader retries) or ends; a resume gets the rest
        wait_until(lambda: httpx.get(f"{gw.url}/readyz").status_code == 200, timeout=20, message="readyz")
        second = wait_until(lambda: _try_adjust(gw), timeout=30, message="a command after the Redis restart")
        resumed = SSEReader(events_url(gw, "default"), headers={"Last-Event-ID": first}).start()
        try:
            resumed.next()
            assert resumed.next_with_id().id == second
            third = adjust(gw, "default", "draw")
            assert resumed.next_with_id().id == third  # live again: the channel reader recovered
        finally:
            resumed.close()
            reader.close()
    finally:
        gw.stop()
        state.stop()


def test_no_request_fails_on_a_stale_connection_after_a_redis_restart(tmp_path: Path, own_redis: RedisServer) -> None:
    """Every pooled connection dies with Redis; once Redis is back no request may pay for one (was a 503 each)."""
    prefix = f"rs{uuid.uuid4().hex[:6]}"
    settings = load_settings(overrides={"redis.url": own_redis.url, "redis.prefix": prefix}).settings
    gw = GatewayThread(settings, tmp_path).start()
    status = f"{gw.url}/api/v1/channels/default/status"
    try:
        with httpx.Client(timeout=10) as http, ThreadPoolExecutor(8) as pool:
            # several requests at once: the pool holds several connections
            assert {r.status_code for r in pool.map(lambda _: http.get(status), range(16))} == {200}
            own_redis.restart()
            wait_until(lambda: redis.Redis.from_url(own_redis.url).ping(), timeout=20, message="Redis back")
            answers = [r.status_code for r in pool.map(lambda _: http.get(status), range(16))]
            answers += [http.get(status).status_code for _ in range(8)]
        assert answers == [200] * 24
    finally:
        gw.stop()


def _try_adjust(gw: GatewayThread) -> str | None:
    r = post_json(gw.url, "/api/v1/channels/default/adjust", {"outcome": "defeat"})
    return str(r.json()["event_id"]) if r.status_code == 200 else None


def test_a_last_event_id_from_the_future_starts_afresh(gateway: GatewayThread, channel: str) -> None:
    """E.g. Redis was wiped under an overlay that stayed open: it must not ignore every new event."""
    current = adjust(gateway, channel)
    reader = SSEReader(events_url(gateway, channel), headers={"Last-Event-ID": "99999999999999-0"}).start()
    try:
        snap = reader.next()
        assert snap.id == current  # a normal snapshot, which resets the browser's last id
        nxt = adjust(gateway, channel, "defeat")
        assert reader.next_with_id().id == nxt
    finally:
        reader.close()


def test_hundreds_of_clients_connecting_at_once(gateway: GatewayThread, channel: str) -> None:
    """More simultaneous connects than Redis pool connections: they wait for one, none is refused."""
    import asyncio

    adjust(gateway, channel)
    port = gateway.port

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /api/v1/channels/{channel}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), 20)
                if not line or line.startswith(b"data: "):
                    return line
        finally:
            writer.close()

    async def many() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(250)))

    lines = asyncio.run(many())
    assert all(line.startswith(b"data: ") for line in lines), sum(1 for x in lines if not x)
    wait_until(lambda: gateway.hubs.client_count(channel) == 0, timeout=20, message="all clients cleaned up")


def test_a_client_the_hub_drops_is_forgotten_at_once(gateway: GatewayThread, channel: str) -> None:
    """A client too slow to keep up is dropped: out of the hub and of owc_gateway_sse_clients right away,
    not when its stalled stream is finally garbage-collected (nothing reads this client's queue)."""
    import asyncio

    from prometheus_client import REGISTRY

    from services.common.contracts.messages import Counts, Event
    from services.gateway.hub import CLIENT_QUEUE

    def gauge() -> float:
        return REGISTRY.get_sample_value("owc_gateway_sse_clients") or 0.0

    baseline = gauge()
    client = asyncio.run_coroutine_threadsafe(gateway.hubs.subscribe(channel), gateway.server.loop).result(10)
    assert gateway.hubs.client_count(channel) == 1 and gauge() == baseline + 1
    rc = redis.Redis.from_url(gateway.settings.redis.url or "")
    try:
        key = Keys(gateway.settings.redis.prefix).events(channel)
        event = Event("adjusted", Counts(1, 0, 0), "s1", "manual", int(time.time() * 1000), "victory", 1)
        pipe = rc.pipeline(transaction=False)
        for _ in range(CLIENT_QUEUE + 50):
            pipe.xadd(key, event.to_fields())  # type: ignore[arg-type]
        pipe.execute()
        wait_until(lambda: client.dropped, timeout=10, message="the hub to drop the stalled client")
        wait_until(lambda: gateway.hubs.client_count(channel) == 0, timeout=5, message="the hub to forget it")
        assert gauge() == baseline
        wait_until(lambda: channel not in gateway.hubs.hubs, timeout=5, message="the idle reader to stop")
    finally:
        rc.close()
