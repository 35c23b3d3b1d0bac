"""A client kept on one connection for a service loop (capture, state): ``redis_for(…, one_thread=True)``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from services.common.cli.cliargs import redis_for
from services.common.config.settings import Settings
from services.common.infra import redisio
from tests.support.redis_proc import RedisServer
from tests.support.waiting import wait_until


def test_one_connection_for_every_command_then_a_new_one_after_a_redis_restart(
    settings_factory: Callable[..., Settings], own_redis: RedisServer
) -> None:
    client, keys = redis_for(settings_factory(redis__url=own_redis.url), 5.0, one_thread=True)
    watcher = own_redis.client()
    try:
        first = client.client_id()
        client.set(keys.seq("default"), 7)
        client.xadd(keys.frames, {"v": "1"})
        assert {client.client_id() for _ in range(5)} == {first}
        # what takes its own connection still works: a pipeline, a subscription
        pipe = client.pipeline()
        pipe.incr(keys.seq("default"))
        pipe.get(keys.seq("default"))
        assert pipe.execute() == [8, b"8"]
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        pubsub.subscribe("owc-test-topic")
        wait_until(lambda: watcher.pubsub_numsub("owc-test-topic")[0][1] == 1, timeout=5,
                   message="the subscription on a connection of its own")
        assert client.client_id() == first
        pubsub.close()

        own_redis.restart()  # SIGTERM: the AOF is flushed
        wait_until(lambda: _answers(client), timeout=10, message="the kept connection made again")
        assert client.get(keys.seq("default")) == b"8"
        assert client.client_id() != first
    finally:
        client.close()
        watcher.close()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_falls_back_to_the_pooled_client_if_redis_goes_away_before_the_connection_is_kept(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory()
    real = redisio.connect

    def connect(settings: Settings, *, one_thread: bool = False) -> redis.Redis:
        if one_thread:
            raise redis.ConnectionError("gone between the wait and the connection")
        return real(settings)

    monkeypatch.setattr(redisio, "connect", connect)
    client, keys = redis_for(settings, 5.0, one_thread=True)
    try:
        assert client.connection is None  # the pooled client it waited with
        client.set(keys.seq("x"), 1)
        assert client.get(keys.seq("x")) == b"1"
    finally:
        client.close()


def test_a_blocking_read_holds_back_another_thread_on_the_same_kept_connection(
    settings_factory: Callable[..., Settings], own_redis: RedisServer
) -> None:
    """Why it is for one thread only: its commands take turns (a pooled client would answer at once)."""
    client, keys = redis_for(settings_factory(redis__url=own_redis.url), 5.0, one_thread=True)
    watcher = own_redis.client()
    read: list[Any] = []
    answered: list[Any] = []
    try:
        reader = threading.Thread(target=lambda: read.append(client.xread({keys.frames: "$"}, block=10_000)),
                                  daemon=True)
        reader.start()
        wait_until(lambda: watcher.info("clients")["blocked_clients"] == 1, timeout=5, message="the blocking read")
        other = threading.Thread(target=lambda: answered.append(client.ping()), daemon=True)
        other.start()
        other.join(0.3)
        assert answered == []  # waiting behind the blocking read
        watcher.xadd(keys.frames, {"v": "1"})  # ends the read
        wait_until(lambda: answered == [True], timeout=5, message="the other thread's command, after the read")
        assert read and read[0]
    finally:
        client.close()
        watcher.close()
