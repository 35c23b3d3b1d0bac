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
``owc:health:{channel}:capture``; then capture goes on or reconnects. What
each failure means and how long to wait after it is one row of
:data:`services.capture.obs_errors.PROBLEMS`; frames go through the shared
:class:`~services.capture.sink.FrameSink`.

The reconnect loop keeps its own backoff rather than a retry library's: the
wait is chosen per failure (row) and the doubling restarts with every
session that connected, which a session lasting hours then dropping is not
"attempt 2" of anything; and the health hash is refreshed while waiting.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time

import redis

from services.capture.cooldown import cooling
from services.capture.cooldown import wait_after as cooldown_wait
from services.capture.metrics import CaptureMetrics
from services.capture.obs_errors import PROBLEMS, STATUS_RESOURCE_NOT_FOUND, Backoffs, Problem, ProblemKey
from services.capture.obsclient import (
    ObsClosedError,
    ObsError,
    ObsRequestClient,
    ObsRequestError,
    ObsTimeoutError,
    describe_sources,
)
from services.capture.publisher import BackPressure, ImageError, Picture, Pressure, image_size, now_ms
from services.capture.schedule import SlotSchedule, burst_wanted
from services.capture.sink import FrameSink
from services.common.config.settings import CaptureSettings, ObsSettings
from services.common.contracts.keys import Keys
from services.common.infra.burst import BurstListener

log = logging.getLogger("owc.capture.obs")

__all__ = ["Backoffs", "ObsSource", "decode_image_data"]

# the connection-level rows; any other failure while connecting reads as a lost connection
CONNECTION_PROBLEMS: frozenset[ProblemKey] = frozenset(
    key for key, problem in PROBLEMS.items() if problem.state is not None
)


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
        self.metrics = metrics
        self.backoffs = backoffs or Backoffs()
        self.sink = FrameSink(
            client, keys, settings, metrics, "obs", log, "dropping frames until it is back", backpressure=backpressure
        )
        self.publisher = self.sink.publisher
        # burst confirmation: inference's hints wake the wait for the next slot
        self.hints = BurstListener(client, keys, settings.channel) if settings.burst else None
        self.connects = 0  # successful connections (tests, bench)
        self._problem: str | None = None  # the last logged problem, to log each change once
        self._problem_text = ""
        self._failures = 0  # connection failures since the last session that connected
        self._render_failures = 0
        self._in_backpressure = False
        self._source_label = obs.source or "(program scene)"
        self.sink.report(force=True, source=self._source_label, obs_connected=False, last_error="", state="starting")

    @property
    def skipped(self) -> int:
        return self.sink.skipped

    @property
    def where(self) -> str:
        return f"ws://{self.obs.host}:{self.obs.port}"

    # -- reporting -----------------------------------------------------
    def _report(
        self, key: str, problem: Problem, wait: float, force: bool = True,
        fields: dict[str, str | int | float | bool] | None = None, **values: object,
    ) -> None:
        """Log a problem when it starts or changes (not on every retry), count it, show it in the health hash."""
        new = self._problem != key
        if new:
            self._problem_text = problem.message(where=self.where, **values)
            then = problem.then.format(wait=wait, max=self.backoffs.connect_max)
            log.log(problem.level, "%s%s", self._problem_text, then)
            self._problem = key
        fields = dict(fields or {})
        if problem.state is not None:
            fields.update(state=problem.state, obs_connected=False)
        self.sink.error(problem.kind, self._problem_text, force=force or new, repeat=not new, **fields)

    # -- connection ----------------------------------------------------
    def _connect(self) -> ObsRequestClient:
        password = self.obs.password.get_secret_value() if self.obs.password else ""
        return ObsRequestClient(self.obs.host, self.obs.port, password, self.obs.timeout_s)

    def _on_connection_failure(self, exc: ObsError) -> float:
        """Log/count a failed or lost connection; return how long to wait."""
        key = exc.problem if exc.problem in CONNECTION_PROBLEMS else "closed"
        problem = PROBLEMS[key]
        if problem.backoff == "restart":
            self._failures = 0
        wait = self.backoffs.delay(problem.backoff, self._failures)
        if problem.backoff == "doubling":
            self._failures += 1
        self.metrics.obs_connected.set(0)
        or_empty = "" if self.obs.password else " or empty"
        self._report(str(key), problem, wait, error=exc, or_empty=or_empty)
        return wait

    def _wait(self, stop: threading.Event, delay: float) -> None:
        """Wait before reconnecting, keeping the health hash (TTL 30 s) alive meanwhile."""
        deadline = time.monotonic() + delay
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.wait(min(remaining, 5.0)) or time.monotonic() >= deadline:
                return
            self.sink.report()  # on the health cadence: an unchanged record every HEALTH_REFRESH_S

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
            self._failures = 0
            try:
                self._on_connected(conn)
                self._capture(conn, stop, max_messages)
            except ObsError as exc:
                delay = self._on_connection_failure(exc)
                conn.disconnect()
                self._wait(stop, delay)
                continue
            self.metrics.obs_connected.set(0)
            conn.disconnect()
        if self.hints is not None:
            self.hints.close()
        self.sink.report(force=True, obs_connected=False, state="stopped")
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
            self._look_up_program_scene(conn)
        log.info(
            "connected to OBS %s (obs-websocket %s) at %s; capturing %s",
            obs_version,
            conn.server_version,
            self.where,
            repr(self.obs.source) if self.obs.source else f"the program scene {conn.program_scene!r}",
        )
        self._problem = None
        self.metrics.obs_connected.set(1)
        self.sink.report(force=True, obs_connected=True, state="connected", obs_version=obs_version, last_error="")

    @staticmethod
    def _look_up_program_scene(conn: ObsRequestClient) -> None:
        conn.program_scene = str(conn.request("GetCurrentProgramScene").get("currentProgramSceneName", ""))

    def _capture(self, conn: ObsRequestClient, stop: threading.Event, max_messages: int | None) -> None:
        interval = self.cfg.interval_ms / 1000.0
        schedule = SlotSchedule.starting(time.monotonic(), interval)
        while not stop.is_set():
            if max_messages is not None and self.publisher.published >= max_messages:
                return
            delay = schedule.due() - time.monotonic()
            if delay > 0:
                if self.hints is None:
                    if stop.wait(delay):
                        return
                else:
                    hint = self.hints.wait(delay, stop)
                    if stop.is_set():
                        return
                    if hint is not None:  # inference saw a candidate: the confirming frame now
                        if burst_wanted(hint, self.publisher.last_seq) and not cooling(
                            self.publisher.cooldown_until, now_ms()
                        ):
                            schedule.ask_burst()
                        continue
            burst, before, started = schedule.burst, self.publisher.published, time.monotonic()
            wait_after = self._one_slot(conn)
            if self.publisher.published > before:
                if burst:
                    self.metrics.bursts.inc()
                # in the channel's cooldown a frame a second (services/capture/cooldown.py)
                slow = cooldown_wait(self.publisher.cooldown_until, self.publisher.last_captured_at or 0,
                                           interval)
                if slow > wait_after:
                    wait_after = slow
                    self.metrics.frames_skipped.labels("cooldown").inc(max(0, round(slow / interval) - 1))
            missed = schedule.taken(started, time.monotonic(), wait_after)
            if missed and wait_after <= interval:  # overran because OBS (or Redis) was slow
                self.sink.skip("obs_slow", missed)
            self.sink.report(obs_connected=True)

    def _room(self) -> bool:
        """Whether inference can take a frame; while it cannot, the slot is skipped (a live frame would be stale)."""
        if self.sink.room() is Pressure.OVER:
            self.sink.skip("backpressure")
            if not self._in_backpressure:
                log.info("inference is behind (%s): skipping captures", self.sink.pressure.describe())
                self._in_backpressure = True
            self.sink.held(self.sink.pressure.held_s)
            return False
        if self._in_backpressure:
            log.info("inference caught up: capturing again")
            self._in_backpressure = False
            self.sink.released()
        return True

    def _one_slot(self, conn: ObsRequestClient) -> float:
        """Take and publish one screenshot; return the minimum wait before the next try."""
        if not self._room():
            return 0.0
        source = self.obs.source or conn.program_scene or ""
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
            self.sink.skip("error")
            return self._request_failed(conn, source, exc)
        except ObsTimeoutError as exc:
            # the late answer would arrive as the next request's: start afresh
            self.sink.skip("error")
            raise ObsClosedError(None, str(exc)) from None
        self.metrics.screenshot_seconds.observe(time.perf_counter() - started)

        try:
            image = decode_image_data(response.get("imageData"))
            fmt, width, height = image_size(image)
        except (ValueError, ImageError) as exc:
            self.sink.skip("error")
            return self._screenshot_problem("decode", source, error=exc)
        if self.sink.publish(Picture(captured_at, image, fmt, width, height)) is None:
            self.sink.skip("error")
            return 0.5
        if self._problem is not None:
            log.info("capturing %r again (seq %d)", source, self.publisher.last_seq)
            self._problem = None
            self._render_failures = 0
            self.sink.report(force=True, last_error="")
        return 0.0

    def _request_failed(self, conn: ObsRequestClient, source: str, exc: ObsRequestError) -> float:
        if exc.code == STATUS_RESOURCE_NOT_FOUND and not self.obs.source:
            # the program scene was renamed or removed: look it up again
            self._look_up_program_scene(conn)
            if conn.program_scene and conn.program_scene != source:
                return 0.0
        key = f"{exc.problem}:{source}"
        # the sources that exist (two more requests) only for the log line, when the problem is new
        sources = describe_sources(conn) if exc.code == STATUS_RESOURCE_NOT_FOUND and self._problem != key else ""
        return self._screenshot_problem(exc.problem, source, code=exc.code, comment=exc.comment, sources=sources)

    def _screenshot_problem(self, key: ProblemKey, source: str, **values: object) -> float:
        """Report a failed screenshot (the connection stays); return the wait before the next one."""
        problem = PROBLEMS[key]
        fields: dict[str, str | int | float | bool] = {}
        if problem.kind == "render_failed":
            self._render_failures += 1
            fields["render_failures"] = self._render_failures
        wait = self.backoffs.delay(problem.backoff)
        self._report(f"{key}:{source}", problem, wait, False, fields, source=source, **values)
        return wait


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
