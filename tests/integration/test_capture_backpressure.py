"""Capture's back-pressure: how often it asks Redis for inference's backlog (real redis-server)."""

from __future__ import annotations

import redis
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.publisher import BackPressure, Pressure
from services.common.contracts.keys import GROUP_INFERENCE, Keys


def backlog_reads(client: redis.Redis) -> int:
    """The backlog script's runs so far (EVALSHA, or EVAL the first time on a new Redis: the NOSCRIPT error of
    the EVALSHA before it is not a run)."""
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) - int(stats.get(f"cmdstat_{c}", {}).get(
        "failed_calls", 0)) for c in ("eval", "evalsha"))


def test_a_capture_in_time_asks_for_the_backlog_every_few_seconds_one_over_the_limit_at_once(
    redis_client: redis.Redis, keys: Keys
) -> None:
    now = [100.0]
    redis_client.xgroup_create(keys.frames, GROUP_INFERENCE, id="$", mkstream=True)
    pressure = BackPressure(redis_client, keys.frames, 64, CaptureMetrics(CollectorRegistry()), clock=lambda: now[0])

    def frame() -> Pressure:
        """One frame 250 ms after the last: the check, then the publish (nobody reads it)."""
        now[0] += 0.25
        result = pressure.check()
        redis_client.xadd(keys.frames, {"x": "1"})
        pressure.note_published()
        return result

    redis_client.config_resetstat()
    # inference keeps up: the projection (16 frames in 4 s) stays under the limit, Redis is asked once at the
    # start and then every check_interval_s (5 s: not every second)
    for _ in range(16):
        assert frame() is Pressure.OK
        redis_client.xtrim(keys.frames, maxlen=0)  # "read": the real backlog stays 0
        redis_client.xgroup_setid(keys.frames, GROUP_INFERENCE, "$")
    assert backlog_reads(redis_client) == 1
    now[0] += pressure.check_interval_s
    assert frame() is Pressure.OK
    assert backlog_reads(redis_client) == 2 and pressure.backlog is not None and pressure.backlog.total == 0

    # inference stops reading: once the projection passes the limit, each check asks Redis (the truth)
    redis_client.config_resetstat()
    results = [frame() for _ in range(70)]
    assert results[:60] == [Pressure.OK] * 60 and Pressure.OVER in results[60:]
    assert pressure.backlog is not None and pressure.backlog.total > 64
    assert backlog_reads(redis_client) >= 3
