"""Redis connections, the version check, health records and channel registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import redis
import redis.asyncio as aioredis

from services.common.keys import Keys
from services.common.settings import Settings

log = logging.getLogger("owc.redis")

MIN_VERSION = (6, 2, 0)


class RedisUnavailableError(RuntimeError):
    pass


def redis_url(settings: Settings) -> str:
    if settings.redis.url:
        return settings.redis.url
    port = settings.redis.embedded_port or 6390
    return f"redis://127.0.0.1:{port}/0"


def connect(settings: Settings) -> redis.Redis:
    """A binary-safe client (``decode_responses=False``: frames carry raw bytes).

    The socket timeout is explicit (redis-py 8 defaults to 5 s) and longer than
    any blocking read the services make (``inference.block_ms`` ≤ 10 s).
    """
    return redis.Redis.from_url(
        redis_url(settings),
        decode_responses=False,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )


def connect_async(
    settings: Settings, *, max_connections: int | None = None, pool_timeout_s: float = 10.0
) -> aioredis.Redis:
    """An asyncio client (bytes responses).

    redis-py's default pool fails with "Too many connections" beyond 100
    concurrent commands; with ``max_connections`` the pool is a blocking one:
    callers wait up to ``pool_timeout_s`` for a free connection instead
    (servers with many concurrent requests, e.g. the gateway's SSE clients).
    """
    if max_connections is None:
        return aioredis.Redis.from_url(
            redis_url(settings), decode_responses=False, socket_connect_timeout=5
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url(settings),
        max_connections=max_connections,
        timeout=pool_timeout_s,
        decode_responses=False,
        socket_connect_timeout=5,
    )
    return aioredis.Redis(connection_pool=pool)


def keys_for(settings: Settings) -> Keys:
    return Keys(settings.redis.prefix)


def parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_version(client: redis.Redis) -> str:
    """Return the server version; raise if it is older than 6.2 (XAUTOCLAIM)."""
    info = client.info("server")
    version = str(info.get("redis_version", "0"))
    if parse_version(version) < MIN_VERSION:
        raise RedisUnavailableError(
            f"Redis {version} is too old: OW Victory Counter needs Redis 6.2 or newer "
            "(XAUTOCLAIM); upgrade it, or leave redis.url empty so `owc run` starts its own"
        )
    return version


def wait_for_redis(client: redis.Redis, timeout_s: float, stop_check: object = None) -> str:
    """Wait until Redis answers (it may still be starting); return its version."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return check_version(client)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            last = exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise RedisUnavailableError(
        f"Redis at {describe(client)} is not reachable after {timeout_s:.0f}s ({last}); "
        "is it running? Set redis.url (OWC_REDIS__URL) or use `owc run` to start one"
    )


def describe(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def publish_health(
    client: redis.Redis,
    keys: Keys,
    channel: str,
    service: str,
    fields: Mapping[str, str | int | float | bool],
    ttl_s: int = 30,
) -> None:
    """Write a service's health hash for a channel; it expires if the service dies."""
    key = keys.health(channel, service)
    data = {k: (str(int(v)) if isinstance(v, bool) else str(v)) for k, v in fields.items()}
    data["updated_at"] = str(int(time.time() * 1000))
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, mapping=data)  # type: ignore[arg-type]
    pipe.expire(key, ttl_s)
    pipe.sadd(keys.channels, channel)
    pipe.execute()
