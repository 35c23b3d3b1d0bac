from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from services.common.config.settings import Settings, load_settings
from services.common.contracts.keys import Keys
from tests.support.helix import HelixServer
from tests.support.redis_proc import RedisServer
from tests.support.webhook_receiver import Receiver


def pytest_configure(config: pytest.Config) -> None:
    # tests talk only to 127.0.0.0/8: onnxruntime's telemetry (on by default since 1.29) would not
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole session (tests isolate by key prefix)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver for webhooks on a random 127.0.0.1 port."""
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def helix() -> Iterator[HelixServer]:
    """A real HTTP server speaking Twitch's OAuth and Helix endpoints on 127.0.0.1."""
    server = HelixServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for tests that restart or kill it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def settings_factory(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Settings pointing at the session Redis with this test's random prefix.

    Keyword arguments are dotted keys with ``.`` written as ``__``:
    ``settings_factory(capture__interval_ms=50)``.
    """
    for name in list(__import__("os").environ):
        if name.upper().startswith("OWC_"):
            monkeypatch.delenv(name)

    def make(**overrides: Any) -> Settings:
        flat = {"redis.url": redis_server.url, "redis.prefix": prefix}
        flat.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_settings(overrides=flat).settings

    return make
