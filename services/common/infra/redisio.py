"""Redis connections, the version check, health records and channel registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from services.common.config.settings import Settings
from services.common.contracts.keys import Keys

log = logging.getLogger("owc.redis")

MIN_VERSION = (6, 2, 0)


class RedisUnavailableError(RuntimeError):
    pass


def redis_url(settings: Settings) -> str:
    if settings.redis.url:
        return settings.redis.url
    port = settings.redis.embedded_port or 6390
    return f"redis://127.0.0.1:{port}/0"


def connect(settings: Settings, *, one_thread: bool = False) -> redis.Redis:
    """A binary-safe client (``decode_responses=False``: frames carry raw bytes).

    The socket timeout is explicit (redis-py 8 defaults to 5 s) and longer than
    any blocking read the services make (``inference.block_ms`` ≤ 10 s).

    ``one_thread``: for a client only one thread uses (a service loop with no helper threads: capture, state).
    Its commands go over one connection it keeps (redis-py's ``single_connection_client``) instead of taking
    one from the pool and giving it back around every command — the checkout's lock, its "has the connection
    data waiting?" ``poll`` and the release cost ~20 µs of client CPU a command (a ``PING`` 37–39 µs through
    the pool, 19–20 kept, on the 2-core VM), and capture and state send one to two a frame. Connects at once
    (raises if Redis is not there: :func:`services.common.cli.cliargs.redis_for` waits for it first). Pipelines
    and pub/sub still take their own connections from its pool. Never share it between threads: its commands
    are serialised by a lock, so one thread's blocking read would hold the others back.
    """
    return redis.Redis.from_url(
        redis_url(settings),
        decode_responses=False,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
        single_connection_client=one_thread,
    )


def connect_async(
    settings: Settings, *, max_connections: int | None = None, pool_timeout_s: float = 10.0
) -> aioredis.Redis:
    """An asyncio client (bytes responses).

    redis-py's default pool fails with "Too many connections" beyond 100
    concurrent commands; with ``max_connections`` the pool is a blocking one:
    callers wait up to ``pool_timeout_s`` for a free connection instead
    (servers with many concurrent requests, e.g. the gateway's SSE clients).

    After a Redis restart every pooled connection is dead; without a check the
    first request on each of them failed (a 503 from the gateway long after
    Redis was back). A connection idle for a second is PINGed first, and a
    connection error is retried twice on a new connection. For the gateway's
    writes: a state command carries a request id, and the state service
    answers a repeated id with its stored reply instead of applying it again;
    a preset write is the same on a second try. Only when a command ran but
    its reply was lost on the way can a retry differ: a second test event for
    an automation, or "nothing to retry"/404 for a retry or delete that was done.
    """
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    if max_connections is None:
        return aioredis.Redis.from_url(
            redis_url(settings), decode_responses=False, socket_connect_timeout=5,
            health_check_interval=1, retry=retry,
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url(settings),
        max_connections=max_connections,
        timeout=pool_timeout_s,
        decode_responses=False,
        socket_connect_timeout=5,
        health_check_interval=1,
        retry=retry,
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


# ---------------------------------------------------------------------------- Redis refusing writes


def write_refusal(exc: BaseException) -> str | None:
    """Why Redis refuses writes, in words, when ``exc`` says so; None for any other error.

    ``MISCONF``: Redis could not write its AOF/RDB file (a full disk, mostly)
    and refuses every write until it can; ``OOM``: ``maxmemory`` reached;
    ``READONLY``: a replica. Reads still work in all three.
    """
    if not isinstance(exc, redis.ResponseError):
        return None
    text = str(exc)
    if "MISCONF" in text:
        if "No space left on device" in text:
            return "disk full (MISCONF)"
        detail = text.split("MISCONF", 1)[1].strip().split(" script:", 1)[0]
        return f"it cannot save to disk (MISCONF: {detail[:160]})"
    if isinstance(exc, redis.exceptions.OutOfMemoryError) or "used memory > 'maxmemory'" in text:
        return "out of memory, maxmemory reached (OOM)"
    if isinstance(exc, redis.exceptions.ReadOnlyError) or "READONLY" in text:
        return "it is a read-only replica (READONLY)"
    return None


def persistence_problem(info: Mapping[str, object]) -> str | None:
    """A failing save from ``INFO persistence`` (Redis refuses writes meanwhile), or None."""
    if info.get("aof_enabled") in (1, "1") and info.get("aof_last_write_status") not in (None, "ok"):
        return "the last AOF write failed (disk full?)"
    if info.get("rdb_last_bgsave_status") not in (None, "ok"):
        return "the last RDB snapshot failed (disk full?)"
    return None


class WriteOutage:
    """A time in which Redis refuses writes: one WARNING per cause, one INFO when it is over, a backoff.

    ``paused`` says what the service does meanwhile ("counting paused, nothing
    lost"); the loop calls :meth:`failed` with the cause and waits the delay it
    returns, and calls :meth:`ok` after any round that wrote.
    """

    def __init__(self, logger: logging.Logger, paused: str, resumed: str, max_delay_s: float = 5.0) -> None:
        self.log = logger
        self.paused = paused
        self.resumed = resumed
        self.max_delay_s = max_delay_s
        self.cause: str | None = None
        self.since: float | None = None
        self._delay = 0.25

    @property
    def active(self) -> bool:
        return self.cause is not None

    def failed(self, cause: str) -> float:
        """Note a refused write; return how long to wait before trying again."""
        if cause != self.cause:
            self.log.warning("Redis cannot write: %s — %s", cause, self.paused)
            self.cause = cause
            if self.since is None:
                self.since = time.monotonic()
            self._delay = 0.25
        delay = self._delay
        self._delay = min(self._delay * 2, self.max_delay_s)
        return delay

    def ok(self) -> None:
        if self.cause is None:
            return
        took = time.monotonic() - (self.since or time.monotonic())
        self.log.info("Redis can write again after %.0fs — %s", took, self.resumed)
        self.cause = None
        self.since = None
        self._delay = 0.25
