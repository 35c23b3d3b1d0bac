"""The frame sink both sources publish through: publisher, back-pressure, health, Redis trouble.

A source (OBS, replay) produces pictures and says what state it is in; the
sink gets each frame into ``owc:frames`` (:class:`FramePublisher`), says
whether inference can take more (:class:`BackPressure`), keeps the health
hash ``owc:health:{channel}:capture`` (frames, skips and errors are filled
in here; written at most once a second unless forced, with a frame when one is
published: in the frame's own round trip) and handles a Redis
that is down or refuses writes: one log line per cause, one when it takes
frames again. What a source does meanwhile differs: live capture drops the
frame, a replay keeps it and retries (:meth:`FrameSink.publish`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from tenacity import RetryCallState, Retrying, retry_if_exception_type, retry_if_result, stop_when_event_set
from tenacity.wait import WaitBaseT, wait_exponential

from services.capture.metrics import CaptureMetrics
from services.capture.publisher import BackPressure, FramePublisher, Picture, Pressure, now_ms
from services.common.config.settings import CaptureSettings
from services.common.contracts import health
from services.common.contracts.health import CaptureHealth
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Frame
from services.common.infra.redisio import write_refusal

T = TypeVar("T")

# a replay keeps a frame Redis refused and retries it: 0.2 s, doubling to 5 s
REPLAY_RETRY = wait_exponential(multiplier=0.2, max=5.0)
REPLAY_FIRST_RETRY_S = 0.2  # REPLAY_RETRY's first wait
# A health record due within this goes with the frame being published, not alone in a round trip of its own
# from the report() that follows the publish a millisecond later: a 4 fps replay's every 4th frame comes
# 1.000 s (± a few ms) after the last record, so about half the time it came just before the record was due.
RIDE_AHEAD_S = 0.05


def _retrying(stop: threading.Event, wait: WaitBaseT, **options: Any) -> Retrying:
    """tenacity, cut short by ``stop`` (the call then returns ``None``)."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return Retrying(wait=wait, stop=stop_when_event_set(stop), sleep=sleep, retry_error_callback=lambda _: None,
                    **options)


class FrameSink:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        settings: CaptureSettings,
        metrics: CaptureMetrics,
        source_kind: str,
        log: logging.Logger,
        meanwhile: str,
        *,
        backpressure: BackPressure | None = None,
        health_interval_s: float = 1.0,
        health_ttl_s: int = 30,
    ) -> None:
        """``meanwhile``: what the source does while Redis takes no frames (for the log line)."""
        self.client = client
        self.keys = keys
        self.channel = settings.channel
        self.metrics = metrics
        self.log = log
        self.meanwhile = meanwhile
        self.publisher = FramePublisher(client, keys, settings.channel, settings.frames_maxlen, metrics, source_kind)
        self.pressure = backpressure or BackPressure(client, keys.frames, settings.max_lag, metrics)
        self._health = CaptureHealth(frames_published=0, skipped=0)
        # a frame's counters (frames_published, last_seq, last_frame_at), folded into the record when it is
        # looked at: copying the record for every frame was a tenth of the replay's CPU on the demo loop
        self._counters: dict[str, int] = {}
        self.health_interval_s = health_interval_s
        self.health_ttl_s = health_ttl_s
        # an unchanged record is written again every HEALTH_REFRESH_S (well inside its TTL)
        self._cadence = health.Cadence(health_interval_s, min(health.HEALTH_REFRESH_S, health_ttl_s / 3))
        self._soonest = min(self._cadence.interval_s, self._cadence.refresh_s)  # no record is due sooner
        self.skipped = 0
        self.redis_failures = 0  # failed publishes
        self._trouble: str | None = None  # the Redis problem last logged

    # -- health and metrics ----------------------------------------------
    @property
    def health(self) -> CaptureHealth:
        """The capture's health record as it stands (what the next write sends)."""
        if self._counters:
            self._health = self._health.updated(**self._counters)
            self._counters = {}
        return self._health

    @health.setter
    def health(self, record: CaptureHealth) -> None:
        self._health, self._counters = record, {}

    def _set(self, **fields: str | int | float | bool) -> None:
        if fields:
            self.health = self.health.updated(**fields)

    def _may_be_due(self, now: float) -> bool:
        """Whether the record can be due at ``now`` (else it need not be built to ask the cadence)."""
        sent_at = self._cadence.sent_at("")
        return sent_at is None or now - sent_at >= self._soonest

    def report(self, force: bool = False, **fields: str | int | float | bool) -> None:
        """The source's own state into the health hash (unless forced: at most once a second while it changes,
        every :data:`~services.common.contracts.health.HEALTH_REFRESH_S` while it does not)."""
        self._set(**fields)
        now = time.monotonic()
        if not force and not self._may_be_due(now):
            return
        if not force and not self._cadence.due("", self.health, now):
            return
        try:
            health.publish(self.client, self.keys, self.channel, self.health, ttl_s=self.health_ttl_s)
            self._cadence.sent("", self.health, now)
        except redis.RedisError as exc:
            self.log.debug("cannot write health (%s)", exc)

    def error(
        self, kind: str, text: str, force: bool = True, repeat: bool = False, **fields: str | int | float | bool
    ) -> None:
        """Count an error and show it; ``repeat``: the problem shown already, again (a retry that failed the
        same way): counted, and the record keeps when it began, written on the usual cadence."""
        self.metrics.errors.labels(kind).inc()
        if repeat:
            self.report(False, **fields)
            return
        self.report(force=force, last_error=text, last_error_at=now_ms(), last_error_kind=kind, **fields)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped += n
        self.metrics.frames_skipped.labels(reason).inc(n)
        self._set(skipped=self.skipped)

    # -- back-pressure ---------------------------------------------------
    def room(self) -> Pressure | None:
        """Whether inference can take another frame; ``None`` when Redis cannot say (the publish reports why)."""
        try:
            return self.pressure.check()
        except redis.RedisError:
            return None

    def held(self, held_s: float) -> None:
        self.report(backpressure=True, held_back_s=round(held_s, 1))

    def released(self, force: bool = False) -> None:
        self.report(force=force, backpressure=False, held_back_s=0)

    # -- publishing ------------------------------------------------------
    def publish(
        self,
        picture: Picture,
        also_set: tuple[str, Mapping[str, str | int]] | None = None,
        *,
        retry_until: threading.Event | None = None,
    ) -> Frame | None:
        """Publish one frame; ``None`` when Redis did not take it (counted, logged once per cause).

        With ``retry_until`` the frame is kept and retried (:data:`REPLAY_RETRY`)
        until Redis takes it; ``None`` then means the event was set.
        """
        if retry_until is not None:
            # nearly always taken at once: the retry machinery only once Redis has refused it
            first = self.publish(picture, also_set)
            if first is not None or retry_until.wait(REPLAY_FIRST_RETRY_S):
                return first
            retrying = _retrying(retry_until, REPLAY_RETRY, retry=retry_if_result(lambda frame: frame is None))
            kept: Frame | None = retrying(self.publish, picture, also_set)
            return kept
        now = time.monotonic()
        # the health record as it will be after this frame (its last_seq is the frame's, the script's to fill in)
        # goes with the frame when it is due: no round trip of its own (built only once it may be due)
        record = None
        if self._may_be_due(now + RIDE_AHEAD_S):
            upcoming = self.health.updated(
                frames_published=self.publisher.published + 1, last_seq=0, last_frame_at=picture.captured_at
            )
            record = upcoming if self._cadence.due("", upcoming, now + RIDE_AHEAD_S) else None
        try:
            frame = self.publisher.publish(
                picture, also_set=also_set,
                health=None if record is None else (health.fields_now(record), self.health_ttl_s),
            )
        except redis.RedisError as exc:
            self.metrics.errors.labels("redis").inc()
            self.redis_failures += 1
            self.redis_trouble(exc)
            return None
        self.pressure.note_published()
        if self._trouble is not None:
            self.log.info("Redis takes frames again: publishing again")
            self._trouble = None
        self._counters.update(frames_published=self.publisher.published, last_seq=frame.seq,
                              last_frame_at=picture.captured_at)
        if record is not None:
            self._cadence.sent("", self.health, now)
        return frame

    def until_redis_writes(
        self, stop: threading.Event, write: Callable[[], T], doing: str, meanwhile: str, wait: WaitBaseT
    ) -> T | None:
        """``write()`` once Redis takes it (retried after each ``wait``); ``None`` only when ``stop`` is set."""

        def trouble(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, redis.RedisError):
                self.redis_trouble(exc, doing, meanwhile)

        retrying = _retrying(stop, wait, retry=retry_if_exception_type(redis.RedisError), before_sleep=trouble)
        result: T | None = retrying(write)
        return result

    def redis_trouble(self, exc: redis.RedisError, doing: str = "publish frames to", meanwhile: str = "") -> None:
        """Log a Redis problem when it starts or its cause changes, not on every retry."""
        cause = write_refusal(exc)
        trouble = cause or type(exc).__name__
        if trouble == self._trouble:
            return
        meanwhile = meanwhile or self.meanwhile
        if cause is not None:
            self.log.warning("Redis cannot write: %s — %s", cause, meanwhile)
        else:
            self.log.warning("cannot %s Redis (%s); %s", doing, exc, meanwhile)
        self._trouble = trouble
