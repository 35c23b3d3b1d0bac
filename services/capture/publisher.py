"""Publishing frames to ``owc:frames``: sequence numbers, trimming, back-pressure, health.

Shared by the OBS and replay sources; the sources decide *when* to capture,
this module decides how a frame gets into Redis and whether inference can
take more.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis
from redis.exceptions import ResponseError

from services.capture.metrics import CaptureMetrics
from services.common.keys import GROUP_INFERENCE, Keys
from services.common.messages import Frame, ImageFormat
from services.common.redisio import publish_health

log = logging.getLogger("owc.capture")


def now_ms() -> int:
    return int(time.time() * 1000)


class ImageError(ValueError):
    pass


def image_size(data: bytes) -> tuple[ImageFormat, int, int]:
    """Format and pixel size read from a JPEG/PNG header (no decoding)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", int(width), int(height)
    if data[:2] == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
                i += 2
                continue
            (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
            # SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the size
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return "jpg", int(width), int(height)
            i += 2 + seg_len
        raise ImageError("JPEG without a frame header (truncated?)")
    raise ImageError(f"not a PNG or JPEG image (starts with {data[:8]!r})")


class FramePublisher:
    """``INCR`` the channel's seq, then ``XADD`` the frame with ``MAXLEN ~``.

    The seq counter lives in Redis, so a restarted capture continues after
    the last number it (or a predecessor) used; a failed XADD leaves a gap,
    never a reused number.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        channel: str,
        maxlen: int,
        metrics: CaptureMetrics,
        source_kind: str,
    ) -> None:
        self.client = client
        self.keys = keys
        self.channel = channel
        self.maxlen = maxlen
        self.metrics = metrics
        self.source_kind = source_kind
        self.published = 0
        self.last_seq: int | None = None
        self.last_captured_at: int | None = None

    def publish(
        self,
        captured_at: int,
        image: bytes,
        fmt: ImageFormat,
        width: int,
        height: int,
        also_set: tuple[str, Mapping[str, str | int]] | None = None,
    ) -> Frame:
        """Publish one frame; ``also_set`` = (hash key, fields) is written in the same MULTI/EXEC."""
        seq = int(self.client.incr(self.keys.seq(self.channel)))
        frame = Frame(
            channel=self.channel,
            seq=seq,
            captured_at=captured_at,
            format=fmt,
            width=width,
            height=height,
            image=image,
        )
        if also_set is None:
            self.client.xadd(
                self.keys.frames,
                frame.to_fields(),  # type: ignore[arg-type]
                maxlen=self.maxlen,
                approximate=True,
            )
        else:
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(self.keys.frames, frame.to_fields(), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            pipe.hset(also_set[0], mapping=dict(also_set[1]))  # type: ignore[arg-type]
            pipe.execute()
        self.published += 1
        self.last_seq = seq
        self.last_captured_at = captured_at
        self.metrics.frames_published.labels(self.source_kind).inc()
        self.metrics.frame_bytes.observe(len(image))
        return frame


class Pressure(Enum):
    OK = "ok"
    OVER = "over"  # inference is behind by more than max_lag
    NO_GROUP = "no_group"  # no inference worker has ever joined


@dataclass(frozen=True)
class Backlog:
    group_exists: bool
    lag: int | None  # entries not yet delivered to the group (None: Redis cannot tell)
    pending: int  # delivered, not yet acknowledged

    @property
    def total(self) -> int:
        return (self.lag or 0) + self.pending


def read_backlog(client: redis.Redis, stream: str, group: str = GROUP_INFERENCE) -> Backlog:
    """The inference group's backlog on the frames stream (``XINFO GROUPS``)."""
    try:
        groups: Sequence[Mapping[Any, Any]] = client.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return Backlog(False, None, 0)
        raise
    for info in groups:
        name = info.get("name")
        if isinstance(name, bytes):
            name = name.decode()
        if name != group:
            continue
        lag = info.get("lag")
        return Backlog(True, None if lag is None else int(lag), int(info.get("pending") or 0))
    return Backlog(False, None, 0)


class BackPressure:
    """Decides whether inference can take another frame, without asking Redis every time.

    Redis is asked at most every ``check_interval_s``; between two reads the
    backlog is projected as last backlog + frames published since. When that
    projection is over the limit, Redis is re-read at most every
    ``blocked_recheck_s`` (a cheap ``XINFO GROUPS``), so a paused replay resumes
    as soon as inference has drained, not a second later.

    The backlog is the group's ``lag + pending`` on the shared frames stream
    (all channels together: the stream is shared, so is the inference pool).
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        max_lag: int,
        metrics: CaptureMetrics,
        group: str = GROUP_INFERENCE,
        check_interval_s: float = 1.0,
        blocked_recheck_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.max_lag = max_lag
        self.metrics = metrics
        self.check_interval_s = check_interval_s
        self.blocked_recheck_s = blocked_recheck_s
        self.clock = clock
        self.backlog: Backlog | None = None
        self._checked_at = float("-inf")
        self._since = 0
        self._warned_no_group = False

    def note_published(self) -> None:
        self._since += 1

    def _refresh(self, now: float) -> Backlog:
        self.backlog = read_backlog(self.client, self.stream, self.group)
        self._checked_at = now
        self._since = 0
        if self.backlog.group_exists:
            self.metrics.backlog.set(self.backlog.total)
            if self._warned_no_group:
                log.info("inference group %r is there now: back-pressure active", self.group)
                self._warned_no_group = False
        elif not self._warned_no_group:
            log.info(
                "no inference worker has joined %s yet (group %r missing); "
                "publishing anyway, the stream is capped by capture.frames_maxlen",
                self.stream,
                self.group,
            )
            self._warned_no_group = True
        return self.backlog

    def projected(self) -> int:
        return (self.backlog.total if self.backlog else 0) + self._since

    def check(self) -> Pressure:
        now = self.clock()
        age = now - self._checked_at
        over = self.backlog is not None and self.backlog.group_exists and self.projected() > self.max_lag
        if age >= self.check_interval_s or (over and age >= self.blocked_recheck_s):
            self._refresh(now)
        assert self.backlog is not None
        if not self.backlog.group_exists:
            return Pressure.NO_GROUP
        return Pressure.OVER if self.projected() > self.max_lag else Pressure.OK


class HealthReporter:
    """Writes ``owc:health:{channel}:capture`` at most once a second (or when forced)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        channel: str,
        interval_s: float = 1.0,
        ttl_s: int = 30,
    ) -> None:
        self.client = client
        self.keys = keys
        self.channel = channel
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.fields: dict[str, str | int | float | bool] = {}
        self._last = float("-inf")

    def update(self, force: bool = False, **fields: str | int | float | bool) -> None:
        self.fields.update(fields)
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        try:
            publish_health(self.client, self.keys, self.channel, "capture", self.fields, ttl_s=self.ttl_s)
            self._last = now
        except redis.RedisError as exc:
            log.debug("cannot write health (%s)", exc)
