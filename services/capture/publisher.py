"""Publishing frames to ``owc:frames``: sequence numbers, trimming, back-pressure.

The parts of the :class:`~services.capture.sink.FrameSink` both sources
publish through: the sources decide *when* to capture, this module decides
how a frame gets into Redis and whether inference can take more.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import redis

from services.capture.metrics import CaptureMetrics
from services.common.contracts.keys import GROUP_INFERENCE, Keys
from services.common.contracts.messages import Frame, ImageFormat
from services.common.infra.streams import GroupBacklog, group_backlog

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


@dataclass(frozen=True, slots=True)
class Picture:
    """One captured image, before it has a channel and a sequence number (what a source hands to the sink)."""

    captured_at: int  # epoch ms, the capture's own clock
    image: bytes  # the encoded JPEG/PNG
    format: ImageFormat
    width: int
    height: int


# One round trip a frame: INCR the channel's seq, XADD the frame with that seq (MAXLEN ~), HSET the fields given
# after the frame's (a replay's progress) and, when it is due, the channel's capture health record (HSET, EXPIRE,
# SADD to the channel registry: what ``health.publish`` does), all in one script. It also returns the channel's
# phase and cooldown end from its state snapshot (``owc:state:{ch}``, written by the state service), so capture
# knows when nothing can be counted without a round trip of its own (:mod:`services.capture.cooldown`).
# KEYS: seq, frames, state[, progress hash][, health hash, channels set]; ARGV: maxlen, the frame's field count n,
# the progress hash's field count m, the health record's field count h, the health TTL, the channel, then the
# frame's n names and values (``seq`` replaced), the progress hash's m, the health record's h (``last_seq``
# replaced). Returns {seq, phase or nil, cooldown_until or nil}.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local n, m, h = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local i = 7
-- appends `count` name/value pairs from ARGV[i] on to `cmd`, the value of the field `own` (if any) replaced by seq
local function pairs_into(cmd, count, own)
  for _ = 1, count do
    cmd[#cmd + 1] = ARGV[i]
    if ARGV[i] == own then cmd[#cmd + 1] = seq else cmd[#cmd + 1] = ARGV[i + 1] end
    i = i + 2
  end
  return cmd
end
redis.call(unpack(pairs_into({'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*'}, n, 'seq')))
local k = 4
if m > 0 then
  redis.call(unpack(pairs_into({'HSET', KEYS[k]}, m, false)))
  k = k + 1
end
if h > 0 then
  redis.call(unpack(pairs_into({'HSET', KEYS[k]}, h, 'last_seq')))
  redis.call('EXPIRE', KEYS[k], ARGV[5])
  redis.call('SADD', KEYS[k + 1], ARGV[6])
end
local st = redis.call('HMGET', KEYS[3], 'phase', 'cooldown_until')
return {seq, st[1], st[2]}
"""


def cooldown_end(phase: bytes | None, until: bytes | None) -> int | None:
    """The cooldown's end (epoch ms) from a state snapshot's ``phase`` and ``cooldown_until`` fields, or None."""
    if phase != b"cooldown" or not until:
        return None
    try:
        return int(until)
    except ValueError:
        return None


@dataclass(eq=False)
class FramePublisher:
    """``INCR`` the channel's seq, then ``XADD`` the frame with ``MAXLEN ~`` (one script, one round trip).

    The seq counter lives in Redis, so a restarted capture continues after
    the last number it (or a predecessor) used; a failed XADD leaves a gap,
    never a reused number.
    """

    client: redis.Redis
    keys: Keys
    channel: str
    maxlen: int
    metrics: CaptureMetrics
    source_kind: str
    published: int = field(default=0, init=False)
    last_seq: int | None = field(default=None, init=False)
    last_captured_at: int | None = field(default=None, init=False)
    # the channel's cooldown end (frame time, epoch ms) as its state snapshot said with the last frame; None
    # when it is not in cooldown (or no state service has written it)
    cooldown_until: int | None = field(default=None, init=False)
    _script: Any = field(default=None, init=False)

    def publish(
        self,
        picture: Picture,
        also_set: tuple[str, Mapping[str, str | int]] | None = None,
        health: tuple[Mapping[str, str], int] | None = None,
    ) -> Frame:
        """Publish one frame; ``also_set`` = (hash key, fields) is written atomically with it, and so is
        ``health`` = (the capture's health record as fields, its TTL in s), its ``last_seq`` the frame's."""
        frame = Frame(  # seq 0 stands in for the number the script takes
            channel=self.channel, seq=0, captured_at=picture.captured_at, format=picture.format,
            width=picture.width, height=picture.height, image=picture.image,
        )
        fields = frame.to_fields()
        keys = [self.keys.seq(self.channel), self.keys.frames, self.keys.state(self.channel)]
        progress = also_set[1] if also_set is not None else {}
        record = health[0] if health is not None else {}
        args: list[Any] = [self.maxlen, len(fields), len(progress), len(record), health[1] if health else 0,
                           self.channel]
        for name, value in fields.items():
            args += (name, value)
        if also_set is not None and progress:
            keys.append(also_set[0])
            for hname, hvalue in progress.items():
                args += (hname, hvalue)
        if record:
            keys += [self.keys.health(self.channel, "capture"), self.keys.channels]
            for hname, hvalue in record.items():
                args += (hname, hvalue)
        if self._script is None:
            self._script = self.client.register_script(_PUBLISH)
        reply = self._script(keys=keys, args=args)
        seq = int(reply[0])
        self.cooldown_until = cooldown_end(reply[1], reply[2])
        frame = replace(frame, seq=seq)
        self.published += 1
        self.last_seq = seq
        self.last_captured_at = picture.captured_at
        self.metrics.frames_published.labels(self.source_kind).inc()
        self.metrics.frame_bytes.observe(len(picture.image))
        return frame


class Pressure(Enum):
    OK = "ok"
    OVER = "over"  # inference is behind by more than max_lag
    NO_GROUP = "no_group"  # no inference worker has ever joined


# Held back longer than this: say so at WARNING (once, then every HELD_REPEAT_S), not only in metrics.
HELD_WARN_S = 5.0
HELD_REPEAT_S = 60.0


@dataclass(eq=False)
class BackPressure:
    """Decides whether inference can take another frame, without asking Redis every time.

    Redis is asked at most every ``check_interval_s``; between two reads the
    backlog is projected as last backlog + frames published since. When that
    projection is over the limit, Redis is re-read at most every
    ``blocked_recheck_s``, so a paused replay resumes as soon as inference has
    drained, not a second later. The projection never counts a frame as read,
    so it is never below the real backlog: the regular read only corrects it
    downwards (and refreshes the backlog gauge), which is why it can be rare —
    every 5 s (once a second, under a profiler, it was ~7% of the replay's CPU
    on the demo loop); a projection that looks over the limit is checked at once.

    The backlog is ``pending`` + the entries after the group's
    ``last-delivered-id`` (counted, see :func:`group_backlog`) on the shared
    frames stream (all channels together: the stream is shared, so is the
    inference pool). The ``lag`` of ``XINFO GROUPS`` is not trusted: Redis
    before 7.2.4 overstates it forever after an AOF rewrite and a restart,
    which froze capture.
    """

    client: redis.Redis
    stream: str
    max_lag: int
    metrics: CaptureMetrics
    group: str = GROUP_INFERENCE
    check_interval_s: float = 5.0
    blocked_recheck_s: float = 0.1
    clock: Callable[[], float] = time.monotonic
    held_warn_s: float = HELD_WARN_S
    backlog: GroupBacklog | None = field(default=None, init=False)
    _checked_at: float = field(default=float("-inf"), init=False)
    _since: int = field(default=0, init=False)
    _warned_no_group: bool = field(default=False, init=False)
    _warned_lag_lies: bool = field(default=False, init=False)
    _held_since: float | None = field(default=None, init=False)
    _held_warned_at: float | None = field(default=None, init=False)

    def note_published(self) -> None:
        self._since += 1

    def _refresh(self, now: float) -> GroupBacklog:
        # counting further than the limit says nothing more: over is over
        self.backlog = group_backlog(self.client, self.stream, self.group, limit=self.max_lag + 1)
        self._checked_at = now
        self._since = 0
        if self.backlog.exists:
            self.metrics.backlog.set(self.backlog.total)
            if self._warned_no_group:
                log.info("inference group %r is there now: back-pressure active", self.group)
                self._warned_no_group = False
            if self.backlog.lag_lies and not self._warned_lag_lies:
                log.info(
                    "Redis reports %d frames undelivered to %r but only %d follow its last-delivered-id "
                    "(Redis < 7.2.4 loses the read counter on an AOF rewrite); counting the entries instead",
                    self.backlog.reported_lag, self.group, self.backlog.undelivered,
                )
                self._warned_lag_lies = True
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

    def describe(self) -> str:
        """The numbers behind the last decision, for log lines."""
        b = self.backlog
        if b is None or not b.exists:
            return f"no inference group {self.group!r} on {self.stream}"
        more = "+" if b.capped else ""
        return (
            f"{self.projected()}{more} frames waiting for inference ({b.pending} being processed, "
            f"{b.undelivered}{more} not yet read) > capture.max_lag={self.max_lag}"
        )

    def _track_held(self, now: float, over: bool) -> None:
        if not over:
            if self._held_since is not None and self._held_warned_at is not None:
                log.info("inference caught up after %.0fs: capture goes on", now - self._held_since)
            self._held_since = self._held_warned_at = None
            return
        if self._held_since is None:
            self._held_since = now
        held = now - self._held_since
        if self._held_warned_at is None:
            due = self.held_warn_s
        else:
            due = self._held_warned_at - self._held_since + HELD_REPEAT_S
        if held >= due:
            log.warning(
                "capture held back for %.0fs: %s; is an inference worker running? (`owc inference`)",
                held, self.describe(),
            )
            self._held_warned_at = now

    @property
    def held_s(self) -> float:
        """How long capture has been held back (0 when it is not)."""
        return 0.0 if self._held_since is None else max(0.0, self.clock() - self._held_since)

    def check(self) -> Pressure:
        now = self.clock()
        age = now - self._checked_at
        over = self.backlog is not None and self.backlog.exists and self.projected() > self.max_lag
        if age >= self.check_interval_s or (over and age >= self.blocked_recheck_s):
            self._refresh(now)
        assert self.backlog is not None
        if not self.backlog.exists:
            self._track_held(now, False)
            return Pressure.NO_GROUP
        over = self.projected() > self.max_lag
        self._track_held(now, over)
        return Pressure.OVER if over else Pressure.OK
