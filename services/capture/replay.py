"""Replay source: a folder of images or a video file, played at ``capture.fps``.

* Folder: every ``.png``/``.jpg``/``.jpeg`` file, sorted by name, is one frame.
* Video: anything ``cv2.VideoCapture`` opens; it is sampled at ``fps`` of
  video time (frame ``k`` is the first video frame at or after ``k/fps`` s),
  so a 60 fps recording replayed at 4 fps looks like a 250 ms OBS capture.

``captured_at`` runs on the replay's own clock: the wall clock at start, then
exactly ``1000/fps`` ms per frame whatever ``--speed`` is, so the counting
rules see real match timing. Wall-clock pacing is ``1/(fps*speed)`` s a frame.

Every frame is delivered, in order: when inference is behind (back-pressure),
a replay *pauses* instead of skipping, and a Redis outage is waited out (the
shared :class:`~services.capture.sink.FrameSink` keeps the frame and retries).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from tenacity import wait_fixed

from services.capture.cooldown import cooling, skip_frame
from services.capture.metrics import CaptureMetrics
from services.capture.publisher import BackPressure, Picture, Pressure, now_ms
from services.capture.replay_cache import EncodedFrames
from services.capture.replay_files import (
    IMAGE_SUFFIXES,
    ReplayError,
    check_replay_path,
    fingerprint,
    iter_frames,
    iter_samples,
    list_images,
    parse_replay_source,
)
from services.capture.schedule import SlotSchedule, burst_wanted
from services.capture.sink import FrameSink
from services.common.config.settings import CaptureSettings
from services.common.contracts.codec import text
from services.common.contracts.keys import Keys
from services.common.infra.burst import BurstListener

log = logging.getLogger("owc.capture.replay")

__all__ = [  # the file side lives in replay_files; imported from here as before
    "IMAGE_SUFFIXES", "ReplayError", "ReplaySource", "ReplaySummary", "check_replay_path", "fingerprint",
    "iter_frames", "iter_samples", "list_images", "parse_replay_source",
]

# How long a replay waits for a first inference worker once it has published
# max_lag frames with nobody reading them; after that it carries on without
# back-pressure (frames older than capture.frames_maxlen may then be trimmed
# unread), so `owc capture --source replay:…` alone still finishes.
NO_GROUP_WAIT_S = 30.0
FINISHED_HEALTH_TTL_S = 24 * 3600  # a finished replay's last health record stays for the admin page



@dataclass
class ReplaySummary:
    published: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    passes: int = 0
    paused_s: float = 0.0
    errors: int = 0
    wall_s: float = 0.0
    finished: bool = False  # reached the end (not stopped)
    extra: dict[str, str] = field(default_factory=dict)


class ReplaySource:
    def __init__(
        self,
        path: Path,
        settings: CaptureSettings,
        client: redis.Redis,
        keys: Keys,
        metrics: CaptureMetrics,
        *,
        no_group_wait_s: float = NO_GROUP_WAIT_S,
        backpressure: BackPressure | None = None,
        resume: bool = True,
    ) -> None:
        self.path = path
        self.cfg = settings
        self.client = client
        self.keys = keys
        self.metrics = metrics
        self.no_group_wait_s = no_group_wait_s
        self.resume = resume
        self.progress_key = keys.replay(settings.channel)
        self.sink = FrameSink(
            client, keys, settings, metrics, "replay", log, "paused, the frame is kept and retried",
            backpressure=backpressure,
        )
        self.publisher = self.sink.publisher
        # burst confirmation: a hint from inference takes the next frame now (services/capture/schedule.py)
        self.hints = BurstListener(client, keys, settings.channel) if settings.burst else None
        self._last_taken = float("-inf")  # monotonic time of the last frame (a burst keeps its distance)
        # a folder's pictures, each made once (a looping replay keeps them)
        self.pictures = EncodedFrames(settings, metrics)
        self.summary = ReplaySummary()
        self._unread_without_group = 0
        self._no_group_since: float | None = None
        self._no_group_given_up = False

    # -- back-pressure -------------------------------------------------
    def _wait_for_room(self, stop: threading.Event) -> float:
        """Block while inference is behind; return the seconds paused."""
        started = time.monotonic()
        announced = False
        while not stop.is_set():
            state = self.sink.room()
            if state is None:  # Redis cannot say: the publish reports it and retries
                break
            if state is Pressure.OK:
                self._unread_without_group = 0
                self._no_group_since = None
                break
            if state is Pressure.NO_GROUP:
                if self._no_group_given_up or self._unread_without_group < self.cfg.max_lag:
                    break
                if self._no_group_since is None:
                    self._no_group_since = time.monotonic()
                    log.info(
                        "replay paused: %d frames wait and no inference worker has joined yet; "
                        "waiting up to %.0fs for one",
                        self._unread_without_group,
                        self.no_group_wait_s,
                    )
                elif time.monotonic() - self._no_group_since >= self.no_group_wait_s:
                    log.warning(
                        "no inference worker after %.0fs: replaying without back-pressure "
                        "(frames beyond capture.frames_maxlen=%d may be trimmed unread)",
                        self.no_group_wait_s,
                        self.cfg.frames_maxlen,
                    )
                    self._no_group_given_up = True
                    break
            elif not announced:
                # short pauses are routine at a high --speed; BackPressure warns when one lasts
                log.debug("replay paused: %s", self.sink.pressure.describe())
            announced = True
            # keep the health hash (TTL 30 s) alive: the admin page must show why nothing moves
            self.sink.held(time.monotonic() - started)
            stop.wait(0.02)
        if announced:
            self.sink.released(force=True)
        # only a real wait is a pause: one pressure check's Redis round trip is not (under load it can take
        # over 1 ms, and counting it would move the replay clock, see run())
        paused = time.monotonic() - started if announced else 0.0
        if paused > 0.001:
            self.metrics.replay_paused_seconds.inc(paused)
        return paused

    # -- pacing --------------------------------------------------------
    def _wait_slot(self, due: float, period_s: float, stop: threading.Event, at_ms: int) -> float | None:
        """Wait for the next frame's time (``at_ms`` in replay time); with a hint (burst confirmation) return
        early, with the monotonic time the frame is taken at. ``None``: its regular time (or ``stop``)."""
        schedule = SlotSchedule(period_s, due, last_taken=self._last_taken)
        while not stop.is_set():
            delay = schedule.due() - time.monotonic()
            if delay <= 0:
                return time.monotonic() if schedule.burst else None
            if self.hints is None:
                stop.wait(delay)
                return None
            hint = self.hints.wait(delay, stop)
            if (hint is not None and burst_wanted(hint, self.publisher.last_seq)
                    and not cooling(self.publisher.cooldown_until, at_ms)):
                schedule.ask_burst()
        return None

    # -- publishing ----------------------------------------------------
    def _publish(
        self, captured_at: int, image: bytes, stop: threading.Event, progress: dict[str, str | int]
    ) -> bool:
        """Publish one frame (and the progress it makes, atomically), waiting out Redis outages."""
        cfg = self.cfg
        picture = Picture(captured_at, image, cfg.image_format, cfg.width, cfg.height)
        frame = self.sink.publish(picture, (self.progress_key, progress), retry_until=stop)
        if frame is None:
            return False
        backlog = self.sink.pressure.backlog
        if backlog is None or not backlog.exists:
            self._unread_without_group += 1
        if self.summary.first_seq is None:
            self.summary.first_seq = frame.seq
        self.summary.last_seq = frame.seq
        self.summary.published += 1
        return True

    def _start_or_resume(self) -> tuple[int, int, int, int]:
        """``(start_wall_ms, k, index in pass, passes)``: fresh, or where an interrupted run stopped.

        The progress hash is written in the same MULTI/EXEC as each frame, so
        after a crash (``kill -9``) the replay goes on after the last frame that
        reached Redis: no frame is published twice, none is lost. The replay
        clock continues too, moved forward if it would otherwise lag behind the
        wall clock (frames stamped in the past would look stale to inference):
        like a live capture that was down, the outage shows as a gap.
        """
        cfg = self.cfg
        fp = fingerprint(self.path)
        raw = self.client.hgetall(self.progress_key) if self.resume else {}
        # the clock starts after the fingerprint (it reads a folder's files), or frames would look older
        now = now_ms()
        saved = {text(k): text(v) for k, v in raw.items()}
        frame_ms = 1000.0 / cfg.fps
        if (
            saved.get("path") == str(self.path.resolve())
            and saved.get("fingerprint") == fp
            and saved.get("fps") == repr(cfg.fps)
            and saved.get("finished") == "0"
            and int(saved.get("k", "0")) > 0
        ):
            k, index, passes = int(saved["k"]), int(saved["index"]), int(saved["passes"])
            start_ms = max(int(saved["start_ms"]), now - round(k * frame_ms))
            self.client.hset(self.progress_key, "start_ms", start_ms)
            log.info(
                "resuming the interrupted replay at frame %d (pass %d, item %d); "
                "use --from-start to replay from the beginning",
                k,
                passes + 1,
                index,
            )
            return start_ms, k, index, passes
        self.client.delete(self.progress_key)
        self.client.hset(
            self.progress_key,
            mapping={
                "path": str(self.path.resolve()),
                "fingerprint": fp,
                "fps": repr(cfg.fps),
                "start_ms": now,
                "k": 0,
                "index": 0,
                "passes": 0,
                "finished": 0,
            },
        )
        return now, 0, 0, 0

    def run(self, stop: threading.Event, max_messages: int | None = None) -> ReplaySummary:
        cfg = self.cfg
        described = check_replay_path(self.path)
        log.info(
            "replaying %s on channel %r at %g fps x%g speed%s -> %s %dx%d",
            described,
            cfg.channel,
            cfg.fps,
            cfg.speed,
            ", looping" if cfg.loop else "",
            cfg.image_format,
            cfg.width,
            cfg.height,
        )
        # the progress record needs a Redis that can write: wait for one, do not crash
        started = self.sink.until_redis_writes(
            stop, self._start_or_resume, "write the replay's progress to", "waiting to start", wait_fixed(1.0)
        )
        if started is None:
            return self.summary
        start_wall_ms, k, start_index, passes = started  # k: the replay clock
        k0 = k
        frame_ms = 1000.0 / cfg.fps
        period_s = 1.0 / (cfg.fps * cfg.speed)
        # the replay clock starts with the pacing, not before the progress writes that came between (as after a
        # pause): at speed 1 a frame is taken at the wall time it is stamped with, not that much later
        start_wall_ms = max(start_wall_ms, now_ms() - round(k * frame_ms))
        t0 = time.monotonic()
        video = not self.path.is_dir()
        self.sink.report(
            force=True, obs_connected=False, source=f"replay:{self.path}", last_error="", state="replaying"
        )
        while not stop.is_set():
            produced_in_pass = 0
            if not video:
                self.pictures.renew(list_images(self.path))
            for index, load in iter_samples(self.path, cfg.fps, self.metrics, start=start_index,
                                            known=self.pictures.ready):
                if stop.is_set() or (max_messages is not None and self.summary.published >= max_messages):
                    break
                if skip_frame(self.publisher.cooldown_until, self.publisher.last_captured_at,
                              start_wall_ms + round(k * frame_ms)):
                    # the channel's cooldown: the replay time goes on, this frame is left out (without waiting
                    # for its slot)
                    k += 1
                    self.metrics.frames_skipped.labels("cooldown").inc()
                    continue
                # a folder's image is encoded ahead; a video's frame once its (replay) time has come
                image = None if video else self.pictures.get(index, load)
                # pacing: frame k is due at t0 + (k - k0)*period (drift-free); a burst takes it early
                due = t0 + (k - k0) * period_s
                burst_at = self._wait_slot(due, period_s, stop, start_wall_ms + round(k * frame_ms))
                if stop.is_set():
                    break
                paused = self._wait_for_room(stop)
                taken = time.monotonic()
                replay_k = float(k)
                if burst_at is not None and taken < due:
                    # a burst: stamped with the replay time it is taken at, between frame k-1's and frame k's;
                    # the frames after it keep their times
                    replay_k = k - min(1.0, (due - taken) / period_s)
                if paused > 0.001:
                    self.summary.paused_s += paused
                if paused > 0.001 and taken >= due:
                    # do not burst to catch up after a pause: frame k is due now (also when the wait that
                    # came before the pause ended late), so the due times and the clock below stay together
                    t0 += taken - due
                    # Like a resume: the replay clock must not fall behind the wall clock,
                    # or every later frame would reach inference already stale (and dropped).
                    start_wall_ms = max(start_wall_ms, now_ms() - round(k * frame_ms))
                if image is None:  # video: the frame on screen at the replay time it is taken at
                    bgr = load((k - replay_k) / cfg.fps)
                    if bgr is None:
                        continue  # the video ended: the pass is over
                    image = self.pictures.encode(bgr)
                captured_at = start_wall_ms + round(replay_k * frame_ms)
                progress: dict[str, str | int] = {
                    "k": k + 1, "index": index + 1, "passes": passes, "start_ms": start_wall_ms,
                }
                self._last_taken = time.monotonic()
                if not self._publish(captured_at, image, stop, progress):
                    break
                if burst_at is not None:
                    self.metrics.bursts.inc()
                produced_in_pass += 1  # only frames actually published count
                k += 1
                self.sink.report()
            else:
                self.summary.passes += 1
                if produced_in_pass == 0 and start_index == 0:
                    raise ReplayError(f"replay {str(self.path)!r} produced no frame")
                start_index = 0
                passes += 1
                if cfg.loop:
                    continue
                self.summary.finished = True
                with contextlib.suppress(redis.RedisError):
                    self.client.hset(self.progress_key, "finished", 1)
            break
        if self.hints is not None:
            self.hints.close()
        self.summary.wall_s = time.monotonic() - t0 + self.summary.paused_s
        self.summary.errors = self.sink.redis_failures
        if self.summary.finished:
            # the admin page says "replay finished" with its last frame, not "no capture running"
            self.sink.health_ttl_s = FINISHED_HEALTH_TTL_S
            self.sink.report(force=True, state="finished")
        else:
            self.sink.report(force=True)
        log.info(
            "replay %s: %d frames published (seq %s..%s, %d pass%s) in %.1fs, paused %.1fs for inference, %d errors",
            "finished" if self.summary.finished else "stopped",
            self.summary.published,
            self.summary.first_seq,
            self.summary.last_seq,
            self.summary.passes,
            "" if self.summary.passes == 1 else "es",
            self.summary.wall_s,
            self.summary.paused_s,
            self.summary.errors,
        )
        return self.summary
