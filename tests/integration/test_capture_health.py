"""Capture's health record rides with a frame: written in the frame's own round trip (real redis-server)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import cv2
import redis
from prometheus_client import CollectorRegistry

from services.capture.metrics import CaptureMetrics
from services.capture.publisher import Picture, now_ms
from services.capture.sink import FrameSink
from services.common.config.settings import Settings
from services.common.contracts.health import CaptureHealth
from services.common.contracts.keys import Keys
from tests.support.obsws_server import make_test_image
from tests.support.redis_proc import RedisServer, counting_pipelines

IMAGE = bytes(cv2.imencode(".jpg", make_test_image(160, 90))[1].tobytes())


def record(client: redis.Redis, key: str) -> CaptureHealth:
    found = CaptureHealth.from_fields(client.hgetall(key))  # type: ignore[arg-type]
    assert found is not None
    return found


def sink_for(client: redis.Redis, keys: Keys, settings: Settings, health_interval_s: float) -> FrameSink:
    """A replay's frame sink on ``client`` whose health record is due every ``health_interval_s``."""
    return FrameSink(client, keys, settings.capture, CaptureMetrics(CollectorRegistry()), "replay",
                     logging.getLogger("test"), "keeping the frame", health_interval_s=health_interval_s)


def test_a_due_health_record_is_written_with_the_frame_in_its_round_trip(
    own_redis: RedisServer, keys: Keys, settings_factory: Callable[..., Settings]
) -> None:
    client = own_redis.client()
    all_settings = settings_factory(redis__url=own_redis.url)
    settings = all_settings.capture
    # due with every frame (it changes with each one): each frame carries the record
    sink = sink_for(client, keys, all_settings, health_interval_s=0.0)
    health_key = keys.health(settings.channel, "capture")
    pipelines: list[object] = []  # the record's own round trip would be a pipeline (health.publish)
    real_pipeline = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipelines.append(args)
        return real_pipeline(*args, **kwargs)

    client.pipeline = pipeline  # type: ignore[method-assign]
    for n in range(1, 4):
        captured_at = now_ms()
        frame = sink.publish(Picture(captured_at, IMAGE, "jpg", 160, 90))
        assert frame is not None
        written = record(client, health_key)
        assert (written.last_seq, written.frames_published, written.last_frame_at) == (frame.seq, n, captured_at)
        assert written.updated_at is not None and written.updated_at >= captured_at
        assert 0 < client.ttl(health_key) <= sink.health_ttl_s
        assert client.sismember(keys.channels, settings.channel)
    assert pipelines == []
    client.close()


def test_health_rides_with_a_frame_only_when_due_and_a_forced_report_writes_at_once(
    own_redis: RedisServer, keys: Keys, settings_factory: Callable[..., Settings]
) -> None:
    client = own_redis.client()
    all_settings = settings_factory(redis__url=own_redis.url)
    settings = all_settings.capture
    sink = sink_for(client, keys, all_settings, health_interval_s=60.0)
    health_key = keys.health(settings.channel, "capture")
    frames = [sink.publish(Picture(now_ms(), IMAGE, "jpg", 160, 90)) for _ in range(3)]
    seqs = [f.seq for f in frames if f is not None]
    assert len(seqs) == 3
    # the first frame carried the record (none sent yet); the next two, within the interval, did not
    assert (record(client, health_key).frames_published, record(client, health_key).last_seq) == (1, seqs[0])
    sink.report()  # on the cadence: not due yet
    assert record(client, health_key).frames_published == 1
    sink.report(force=True, state="replaying")
    written = record(client, health_key)
    assert (written.state, written.frames_published, written.last_seq) == ("replaying", 3, seqs[2])
    client.close()


def test_a_record_due_within_moments_rides_with_the_frame_not_alone_right_after_it(
    own_redis: RedisServer, keys: Keys, settings_factory: Callable[..., Settings]
) -> None:
    """A frame published just before the record is due carries it; the report() that follows the publish (the
    replay's loop) then has nothing to write, instead of a round trip of its own a millisecond later."""
    client = own_redis.client()
    all_settings = settings_factory(redis__url=own_redis.url)
    sink = sink_for(client, keys, all_settings, health_interval_s=1.0)
    health_key = keys.health(all_settings.capture.channel, "capture")
    assert sink.publish(Picture(now_ms(), IMAGE, "jpg", 160, 90)) is not None  # the first carries it
    sent_at, fields = sink._cadence._sent[""]
    sink._cadence._sent[""] = (sent_at - 0.98, fields)  # as if sent 0.98 s ago: due in ~20 ms
    pipelines = counting_pipelines(client)
    frame = sink.publish(Picture(now_ms(), IMAGE, "jpg", 160, 90))
    assert frame is not None
    sink.report()
    written = record(client, health_key)
    assert (written.frames_published, written.last_seq) == (2, frame.seq)
    assert pipelines == []  # no record of its own
    client.close()
