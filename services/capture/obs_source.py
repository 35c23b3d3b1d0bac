"""OBS source: ``GetSourceScreenshot`` every ``capture.interval_ms``, published as frames.

Scheduling is drift-free (slot ``k`` is due at ``t0 + k*interval``), with one
request in flight: when a screenshot takes longer than the interval, the
slots it overran are skipped and counted (``obs_slow``), never queued.

``captured_at`` is the wall clock when the request is sent. OBS renders the
screenshot as soon as it handles the request, so this is the closest cheap
estimate of when the picture was on screen (the round trip is mostly the
encoding that follows).

Failures never end the loop: each gets one readable log line (repeated only
when it changes), a counter, and the health hash
``owc:health:{channel}:capture``; then capture goes on or reconnects.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass

import redis

from services.capture.metrics import CaptureMetrics
from services.capture.obsclient import (
    STATUS_INVALID_RESOURCE_TYPE,
    STATUS_NOT_READY,
    STATUS_REQUEST_PROCESSING_FAILED,
    STATUS_RESOURCE_NOT_FOUND,
    ObsClosedError,
    ObsError,
    ObsExitingError,
    ObsRequestClient,
    ObsRequestError,
    ObsTimeoutError,
    describe_sources,
)
from services.capture.publisher import (
    BackPressure,
    FramePublisher,
    HealthReporter,
    ImageError,
    Pressure,
    image_size,
    now_ms,
)
from services.common.keys import Keys
from services.common.redisio import write_refusal
from services.common.settings import CaptureSettings, ObsSettings

log = logging.getLogger("owc.capture.obs")


@dataclass(frozen=True)
class Backoffs:
    """Waits between connection attempts, by what went wrong (seconds)."""

    connect_initial: float = 0.25
    connect_max: float = 2.0  # keeps "resume within 5 s of OBS being back"
    auth: float = 15.0  # wrong password: someone has to fix the setting
    kicked: float = 30.0  # the user kicked us: do not hammer
    config_error: float = 2.0  # 600/602: retry the screenshot this often, not every interval


class ObsSource:
    def __init__(
        self,
        obs: ObsSettings,
        settings: CaptureSettings,
        client: redis.Redis,
        keys: Keys,
        metrics: CaptureMetrics,
        *,
        backoffs: Backoffs | None = None,
        backpressure: BackPressure | None = None,
    ) -> None:
        self.obs = obs
        self.cfg = settings
        self.redis = client
        self.keys = keys
        self.metrics = metrics
        self.backoffs = backoffs or Backoffs()
        self.publisher = FramePublisher(client, keys, settings.channel, settings.frames_maxlen, metrics, "obs")
        self.pressure = backpressure or BackPressure(client, keys.frames, settings.max_lag, metrics)
        self.health = HealthReporter(client, keys, settings.channel)
        self.skipped = 0
        self.connects = 0  # successful connections (tests, bench)
        self._problem: str | None = None  # the last logged problem, to log each change once
        self._connect_delay = self.backoffs.connect_initial
        self._render_failures = 0
        self._in_backpressure = False
        self._redis_down = False
        self._source_label = obs.source or "(program scene)"
        self._health(force=True, obs_connected=False, last_error="", state="starting")

    # -- reporting -----------------------------------------------------
    def _health(self, force: bool = False, **fields: str | int | float | bool) -> None:
        self.health.update(
            force=force,
            source=self._source_label,
            frames_published=self.publisher.published,
            skipped=self.skipped,
            last_seq=self.publisher.last_seq or 0,
            last_frame_at=self.publisher.last_captured_at or 0,
            **fields,
        )

    def _problem_once(self, key: str, level: int, message: str, *args: object) -> None:
        """Log a problem when it starts or changes, not on every retry."""
        if self._problem != key:
            log.log(level, message, *args)
            self._problem = key

    def _error(self, kind: str, text: str, force: bool = True) -> None:
        self.metrics.errors.labels(kind).inc()
        self._health(force=force, last_error=text, last_error_at=now_ms(), last_error_kind=kind)

    def _skip(self, reason: str, n: int = 1) -> None:
        self.skipped += n
        self.metrics.frames_skipped.labels(reason).inc(n)

    # -- connection ----------------------------------------------------
    @property
    def where(self) -> str:
        return f"ws://{self.obs.host}:{self.obs.port}"

    def _connect(self) -> ObsRequestClient:
        password = self.obs.password.get_secret_value() if self.obs.password else ""
        return ObsRequestClient(self.obs.host, self.obs.port, password, self.obs.timeout_s)

    def _on_connection_failure(self, exc: ObsError) -> float:
        """Log/count a failed or lost connection; return how long to wait."""
        kind = exc.kind
        self.metrics.obs_connected.set(0)
        self.health.set(obs_connected=False)
        if kind == "auth":
            text = (
                f"OBS at {self.where} refused the password (obs.password / OWC_OBS__PASSWORD is wrong"
                f"{' or empty' if not self.obs.password else ''}; see OBS → Tools → WebSocket Server Settings)"
            )
            self._problem_once("auth", logging.ERROR, "%s; retrying every %.0fs", text, self.backoffs.auth)
            self._error("auth", text)
            self._health(force=True, state="auth_failed")
            return self.backoffs.auth
        if kind == "kicked":
            text = f"OBS at {self.where} ended this session (kicked, close code 4011)"
            self._problem_once("kicked", logging.WARNING, "%s; reconnecting in %.0fs", text, self.backoffs.kicked)
            self._error("kicked", text)
            self._health(force=True, state="kicked")
            return self.backoffs.kicked
        if isinstance(exc, ObsExitingError):
            text = f"OBS at {self.where} is closing (ExitStarted)"
            self._problem_once("exiting", logging.WARNING, "%s; reconnecting when it is back", text)
            self._error("closed", text)
            self._health(force=True, state="reconnecting")
            self._connect_delay = self.backoffs.connect_initial
            return self._connect_delay
        delay = self._connect_delay
        self._connect_delay = min(self._connect_delay * 2, self.backoffs.connect_max)
        if kind == "connect":
            text = f"OBS is not reachable at {self.where} ({exc}); is OBS running with its WebSocket server enabled?"
            self._problem_once("connect", logging.WARNING, "%s Retrying every %.1fs at most", text,
                               self.backoffs.connect_max)
        else:
            text = f"lost the connection to OBS at {self.where} ({exc})"
            self._problem_once("closed:" + type(exc).__name__, logging.WARNING, "%s; reconnecting", text)
        self._error(kind, text, force=self._problem != "connect" or self.health.record.state != "reconnecting")
        self._health(force=True, state="reconnecting")
        return delay

    def _wait(self, stop: threading.Event, delay: float) -> None:
        """Wait before reconnecting, keeping the health hash (TTL 30 s) alive meanwhile."""
        deadline = time.monotonic() + delay
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.wait(min(remaining, 5.0)):
                return
            self._health(force=True)

    # -- the loop ------------------------------------------------------
    def run(self, stop: threading.Event, max_messages: int | None = None) -> None:
        log.info(
            "capturing %s from OBS at %s for channel %r every %d ms (%s %dx%d q%d)",
            self._source_label,
            self.where,
            self.cfg.channel,
            self.cfg.interval_ms,
            self.cfg.image_format,
            self.cfg.width,
            self.cfg.height,
            self.cfg.quality,
        )
        while not stop.is_set():
            if max_messages is not None and self.publisher.published >= max_messages:
                break
            try:
                conn = self._connect()
            except ObsError as exc:
                self._wait(stop, self._on_connection_failure(exc))
                continue
            self.connects += 1
            self._connect_delay = self.backoffs.connect_initial
            try:
                self._on_connected(conn)
                self._capture(conn, stop, max_messages)
            except ObsError as exc:
                delay = self._on_connection_failure(exc)
                self.metrics.obs_connected.set(0)
                conn.disconnect()
                self._wait(stop, delay)
                continue
            self.metrics.obs_connected.set(0)
            conn.disconnect()
        self._health(force=True, obs_connected=False, state="stopped")
        log.info(
            "capture stopped: %d frames published (last seq %s), %d slots skipped",
            self.publisher.published,
            self.publisher.last_seq,
            self.skipped,
        )

    def _on_connected(self, conn: ObsRequestClient) -> None:
        try:
            version = conn.request("GetVersion")
            obs_version = str(version.get("obsVersion", "?"))
        except ObsRequestError:
            obs_version = "?"
        if not self.obs.source:
            conn.program_scene = str(conn.request("GetCurrentProgramScene").get("currentProgramSceneName", ""))
        log.info(
            "connected to OBS %s (obs-websocket %s) at %s; capturing %s",
            obs_version,
            conn.server_version,
            self.where,
            repr(self.obs.source) if self.obs.source else f"the program scene {conn.program_scene!r}",
        )
        self._problem = None
        self.metrics.obs_connected.set(1)
        self._health(force=True, obs_connected=True, state="connected", obs_version=obs_version, last_error="")

    def _source_name(self, conn: ObsRequestClient) -> str:
        return self.obs.source or conn.program_scene or ""

    def _capture(self, conn: ObsRequestClient, stop: threading.Event, max_messages: int | None) -> None:
        interval = self.cfg.interval_ms / 1000.0
        due = time.monotonic()
        while not stop.is_set():
            if max_messages is not None and self.publisher.published >= max_messages:
                return
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            wait_after = self._one_slot(conn)
            due += max(interval, wait_after)
            now = time.monotonic()
            if now > due:
                missed = int((now - due) // interval) + 1
                if wait_after <= interval:  # overran because OBS (or Redis) was slow
                    self._skip("obs_slow", missed)
                due += missed * interval
            self._health(obs_connected=True)

    def _one_slot(self, conn: ObsRequestClient) -> float:
        """Take and publish one screenshot; return the minimum wait before the next try."""
        try:
            state = self.pressure.check()
        except redis.RedisError:
            state = Pressure.OK  # the publish will say what is wrong with Redis
        if state is Pressure.OVER:
            self._skip("backpressure")
            if not self._in_backpressure:
                log.info("inference is behind (%s): skipping captures", self.pressure.describe())
                self._in_backpressure = True
            self._health(backpressure=True, held_back_s=round(self.pressure.held_s, 1))
            return 0.0
        if self._in_backpressure:
            log.info("inference caught up: capturing again")
            self._in_backpressure = False
            self._health(backpressure=False, held_back_s=0)

        source = self._source_name(conn)
        captured_at = now_ms()
        started = time.perf_counter()
        try:
            response = conn.request(
                "GetSourceScreenshot",
                {
                    "sourceName": source,
                    "imageFormat": self.cfg.image_format,
                    "imageWidth": self.cfg.width,
                    "imageHeight": self.cfg.height,
                    "imageCompressionQuality": self.cfg.quality,
                },
            )
        except ObsRequestError as exc:
            return self._request_failed(conn, source, exc)
        except ObsTimeoutError as exc:
            # the late answer would arrive as the next request's: start afresh
            self._skip("error")
            raise ObsClosedError(None, str(exc)) from None
        rtt = time.perf_counter() - started
        self.metrics.screenshot_seconds.observe(rtt)

        try:
            image = decode_image_data(response.get("imageData"))
            fmt, width, height = image_size(image)
        except (ValueError, ImageError) as exc:
            self._skip("error")
            text = f"OBS sent a screenshot of {source!r} that cannot be read ({exc})"
            self._problem_once("decode", logging.WARNING, "%s", text)
            self._error("decode", text)
            return 0.0
        try:
            self.publisher.publish(captured_at, image, fmt, width, height)
            self.pressure.note_published()
        except redis.RedisError as exc:
            self._skip("error")
            self.metrics.errors.labels("redis").inc()
            if not self._redis_down:
                cause = write_refusal(exc)
                if cause is not None:
                    log.warning("Redis cannot write: %s — capture drops frames until it can", cause)
                else:
                    log.warning("cannot publish frames to Redis (%s); dropping frames until it is back", exc)
                self._redis_down = True
            return 0.5
        if self._redis_down:
            log.info("Redis is back: publishing frames again")
            self._redis_down = False
        if self._problem is not None:
            log.info("capturing %r again (seq %d)", source, self.publisher.last_seq)
            self._problem = None
            self._render_failures = 0
            self._health(force=True, last_error="")
        return 0.0

    def _request_failed(self, conn: ObsRequestClient, source: str, exc: ObsRequestError) -> float:
        self._skip("error")
        code = exc.code
        if code == STATUS_RESOURCE_NOT_FOUND:
            if not self.obs.source:
                # the program scene was renamed or removed: look it up again
                conn.program_scene = str(
                    conn.request("GetCurrentProgramScene").get("currentProgramSceneName", "")
                )
                if conn.program_scene and conn.program_scene != source:
                    return 0.0
            key = f"600:{source}"
            if self._problem != key:
                text = (
                    f"OBS has no source named {source!r} (600); the sources that exist are "
                    f"{describe_sources(conn)}. Set obs.source (OWC_OBS__SOURCE) to one of them, "
                    "or leave it empty to capture the program scene"
                )
                log.error("%s", text)
                self._problem = key
                self._error("source_missing", text)
            else:
                self.metrics.errors.labels("source_missing").inc()
            return self.backoffs.config_error
        if code == STATUS_INVALID_RESOURCE_TYPE:
            text = (
                f"OBS source {source!r} is not a video source (602: {exc.comment or 'e.g. an audio input'}); "
                "point obs.source at a scene or a video input"
            )
            if self._problem != f"602:{source}":
                log.error("%s", text)
                self._problem = f"602:{source}"
                self._error("not_video", text)
            else:
                self.metrics.errors.labels("not_video").inc()
            return self.backoffs.config_error
        if code == STATUS_REQUEST_PROCESSING_FAILED:
            self._render_failures += 1
            text = (
                f"OBS could not render {source!r} (702: {exc.comment or 'render failed'}); "
                "e.g. a game capture that is not hooked yet. Counting and retrying"
            )
            self._problem_once(f"702:{source}", logging.WARNING, "%s", text)
            self.metrics.errors.labels("render_failed").inc()
            self._health(
                force=self._render_failures == 1,
                last_error=text,
                last_error_kind="render_failed",
                render_failures=self._render_failures,
            )
            return 0.0
        if code == STATUS_NOT_READY:
            self._problem_once("207", logging.INFO, "OBS is not ready yet (207); retrying")
            self.metrics.errors.labels("request").inc()
            return 0.5
        text = f"GetSourceScreenshot of {source!r} failed: code {code} ({exc.comment})"
        self._problem_once(f"{code}:{source}", logging.ERROR, "%s", text)
        self._error("request", text)
        return self.backoffs.config_error


def decode_image_data(data: object) -> bytes:
    """``data:image/jpg;base64,…`` (or bare base64) -> raw image bytes."""
    if not isinstance(data, str) or not data:
        raise ValueError("no imageData in the response")
    if data.startswith("data:"):
        _, sep, data = data.partition(",")
        if not sep:
            raise ValueError("imageData is a data URI without a payload")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"imageData is not valid base64 ({exc})") from None
