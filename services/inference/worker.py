"""The inference worker: frames from ``owc:frames`` (group ``inference``) to labels.

Several workers (processes, possibly on several machines) share the stream
through the consumer group: Redis hands each frame to one of them. Each
loop first reclaims frames left pending by a dead worker (``XAUTOCLAIM``
after ``claim_idle_ms``), then reads new ones in small batches. For a batch:

1. parse each entry (:class:`Frame`); malformed → an ``error`` label (when
   its channel and seq can be read; otherwise it is dead-lettered) and ack;
2. drop frames older than ``max_frame_age_ms`` (wall clock now vs
   ``captured_at``), ack them and count them: after a pause the backlog must
   not delay live detection;
3. decode (reduced JPEG decode), crop the ROI, resize, normalise — through
   :mod:`services.inference.vision`; undecodable → ``error`` label and ack;
4. run the model once for the whole batch;
5. one MULTI/EXEC round trip: XADD every label (trimmed ``MAXLEN ~``), SET
   the detection frame of every outcome (TTL), XACK every handled entry.
   Labels and acks commit together, so a frame is never both labelled and
   left pending.

An unexpected error on a frame (not a bad frame: a bug, a broken model)
leaves it unacked; it is retried after ``claim_idle_ms`` and goes to the
dead-letter stream after ``max_deliveries``.

About stale frames and replays: the age is measured against the frame's own
``captured_at`` (a replay's own clock, see docs/inference.md): a worker that
falls behind by more than ``max_frame_age_ms`` drops frames as it would live.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import redis
from redis.exceptions import ResponseError

from services.common.config.settings import InferenceSettings
from services.common.contracts import health
from services.common.contracts.health import InferenceHealth
from services.common.contracts.keys import GROUP_INFERENCE, InvalidChannelError, Keys, validate_channel
from services.common.contracts.messages import Frame, Label, MessageError
from services.common.infra.redisio import WriteOutage, write_refusal
from services.common.infra.streams import Delivery, GroupConsumer, xadd_message
from services.inference import group, metrics
from services.inference.banner import BannerReader, phase_from_snapshot
from services.inference.burst import EarlyHint, ask_for_burst
from services.inference.classifier import Classifier, Prediction
from services.inference.nearmiss import NearMisses
from services.inference.vision import FrameDecodeError

log = logging.getLogger("owc.inference")

# a channel's health record changes with every frame (its label's confidence and time): written at most this
# often (the status panel shows the last label; the record's TTL is 30 s, the gateway has no tighter limit)
HEALTH_INTERVAL_S = 2.0
# a backlog (the last read filled its batch: frames may be waiting): the lag gauge is refreshed this often
LAG_INTERVAL_S = 1.0
# no backlog (the last read found fewer frames than it asked for, so none was left waiting: a live feed, or
# idle): the lag gauge is refreshed this rarely — each refresh is four Redis round trips, as many as a second
# of a live channel's frames cost
IDLE_LAG_INTERVAL_S = 10.0
PRUNE_INTERVAL_S = 60.0  # how often idle consumers are looked for (see group.PRUNE_IDLE_MS)

# (read started, batch committed, frames in the batch), monotonic seconds
BatchHook = Callable[[float, float, int], None]


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class _Ready:
    delivery: Delivery
    frame: Frame
    tensor: npt.NDArray[np.float32]
    pre_s: float  # decode + preprocess of this frame


class InferenceWorker:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        classifier: Classifier,
        settings: InferenceSettings,
        name: str | None = None,
        *,
        on_batch: BatchHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.classifier = classifier
        self.settings = settings
        self.name = name or settings.worker_name or default_worker_name()
        self.on_batch = on_batch
        self.clock = clock
        self.consumer = GroupConsumer(
            client,
            keys.frames,
            GROUP_INFERENCE,
            self.name,
            claim_idle_ms=settings.claim_idle_ms,
            max_deliveries=settings.max_deliveries,
        )
        self._dead_seen = 0
        # each channel's last label (label, confidence, at ms); its health record is built when it may be sent
        self._notes: dict[str, tuple[str, float, int]] = {}
        self._health_sent: dict[str, float] = {}
        self._near = NearMisses()
        # the reader's schedule and per-channel memory; the phase (cooldown) read from the state snapshot
        self.banner = BannerReader(classifier, phase=phase_from_snapshot(client, keys))
        self._health_cadence = health.Cadence(HEALTH_INTERVAL_S)
        self._beat_sent = float("-inf")
        self._next_lag = 0.0
        self._next_prune = 0.0
        self.poller = group.QuietPacedPoll(self.consumer, settings.block_ms, claim_idle_ms=settings.claim_idle_ms)
        self.outage = WriteOutage(
            log, "inference paused, the frames wait in the stream", "inference goes on"
        )

    # loop -----------------------------------------------------------------
    def run(self, stop: threading.Event, max_messages: int | None = None) -> int:
        """Process frames until ``stop`` is set (or ``max_messages`` entries were handled)."""
        groups_ready = False
        log.info(
            "worker %s ready: group %s on %s, model %s",
            self.name, GROUP_INFERENCE, self.keys.frames, self.classifier.model_id,
        )
        handled = 0
        backoff = 0.1
        while not stop.is_set():
            if max_messages is not None and handled >= max_messages:
                break
            count = self.settings.batch_size
            if max_messages is not None:
                count = min(count, max_messages - handled)
            try:
                if not groups_ready:
                    self.consumer.ensure_group()
                    groups_ready = True
                started = time.monotonic()
                deliveries = self.poller.poll(count)
                self._count_dead_letters()
                if deliveries:
                    self.handle(deliveries)
                    handled += len(deliveries)
                    if self.on_batch is not None:
                        self.on_batch(started, time.monotonic(), len(deliveries))
                self._housekeeping(backlog=len(deliveries) >= count)
                self.outage.ok()
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except ResponseError as exc:
                cause = write_refusal(exc)
                if cause is not None:
                    # the batch's labels and acks went together or not at all: its frames stay pending
                    # and are reclaimed (or dropped as stale) once Redis can write again
                    stop.wait(self.outage.failed(cause))
                    continue
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("consumer group %s vanished (%s); creating it again", GROUP_INFERENCE, exc)
                groups_ready = False
        try:
            self._publish_health(force=True)
            health.worker_beat(self.client, self.keys, self.name, alive=False)
        except redis.RedisError as exc:
            log.debug("cannot write the last health record (%s)", exc)
        return handled

    def _count_dead_letters(self) -> None:
        new = self.consumer.dead_lettered - self._dead_seen
        if new:
            metrics.DROPPED_DEAD_LETTER.inc(new)
            self._dead_seen = self.consumer.dead_lettered

    def _housekeeping(self, backlog: bool = False) -> None:
        self._publish_health()
        now = time.monotonic()
        if backlog:  # a full batch: frames may be waiting, back to the busy period at once
            self._next_lag = min(self._next_lag, now + LAG_INTERVAL_S)
        if now >= self._next_lag:
            self._next_lag = now + (LAG_INTERVAL_S if backlog else IDLE_LAG_INTERVAL_S)
            self.refresh_lag()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_S
            self.prune_consumers()

    def prune_consumers(self) -> list[str]:
        return group.prune_consumers(self.client, self.keys, keep=self.name)

    def refresh_lag(self) -> None:
        group.refresh_lag(self.client, self.keys)

    # one batch ------------------------------------------------------------
    def handle(self, deliveries: list[Delivery]) -> None:
        """Classify a batch and commit labels, detection frames and acks in one round trip."""
        metrics.BATCH_SIZE.observe(len(deliveries))
        now_ms = self.clock() * 1000.0
        max_age = self.settings.max_frame_age_ms
        pipe = self.client.pipeline(transaction=True)
        acks: list[bytes] = []
        ready: list[_Ready] = []
        for delivery in deliveries:
            try:
                frame = Frame.from_fields(delivery.fields)
                validate_channel(frame.channel)
            except (MessageError, InvalidChannelError) as exc:
                if self._poison(pipe, delivery, str(exc)):
                    acks.append(delivery.id)
                continue
            if now_ms - frame.captured_at > max_age:
                metrics.DROPPED_STALE.inc()
                acks.append(delivery.id)
                continue
            try:
                t0 = time.perf_counter()
                image = self.classifier.decode(frame.image, frame.width, frame.height)
                t1 = time.perf_counter()
                tensor = self.classifier.preprocess_image(image)
                t2 = time.perf_counter()
            except FrameDecodeError as exc:
                self._error_label(pipe, frame.channel, frame.seq, frame.captured_at, str(exc))
                acks.append(delivery.id)
                continue
            except Exception:
                log.exception("frame %s (%s #%d) failed; it will be retried", delivery.id_str, frame.channel, frame.seq)
                continue
            metrics.DECODE_SECONDS.observe(t1 - t0)
            metrics.PREPROCESS_SECONDS.observe(t2 - t1)
            ready.append(_Ready(delivery, frame, tensor, t2 - t0))

        if ready:
            acks += self._classify(pipe, ready)
        if acks:
            pipe.xack(self.keys.frames, GROUP_INFERENCE, *acks)
        if len(pipe):
            group.commit(pipe, self.keys, self.poller)

    def _classify(self, pipe: redis.client.Pipeline, ready: list[_Ready]) -> list[bytes]:
        t0 = time.perf_counter()
        try:
            probs = self.classifier.predict(np.stack([r.tensor for r in ready]))
        except Exception:
            log.exception("the model failed on a batch of %d frames; trying them one by one", len(ready))
            done: list[bytes] = []
            for item in ready:
                done += self._classify_one(pipe, item)
            return done
        per_frame = (time.perf_counter() - t0) / len(ready)
        acks: list[bytes] = []
        for i, item in enumerate(ready):
            acks += self._finish(pipe, item, probs[i].tolist(), per_frame)
        return acks

    def _classify_one(self, pipe: redis.client.Pipeline, item: _Ready) -> list[bytes]:
        t0 = time.perf_counter()
        try:
            probs = self.classifier.predict(item.tensor[None])
        except Exception:
            log.exception(
                "the model failed on frame %s (%s #%d); it stays pending and will be retried, "
                "then dead-lettered after %d deliveries",
                item.delivery.id_str, item.frame.channel, item.frame.seq, self.settings.max_deliveries,
            )
            return []
        return self._finish(pipe, item, probs[0].tolist(), time.perf_counter() - t0)

    def _finish(self, pipe: redis.client.Pipeline, item: _Ready, probs: list[float], model_s: float) -> list[bytes]:
        """The gate's probabilities through the banner reader (its schedule, reuse, list check), then published."""
        t1 = time.perf_counter()
        early = EarlyHint(self.client, self.keys, item.frame)  # the burst hint, before the list check
        try:
            pred = self.banner.frame(item.frame.channel, item.frame.captured_at, probs, item.tensor,
                                     _source(item.frame), early)
        except FrameDecodeError as exc:
            self._error_label(pipe, item.frame.channel, item.frame.seq, item.frame.captured_at, str(exc))
            return [item.delivery.id]
        metrics.MODEL_SECONDS.observe(model_s)
        self._observe_stages(pred)
        self._publish(pipe, item, pred, item.pre_s + model_s + time.perf_counter() - t1, hinted=early.sent)
        return [item.delivery.id]

    @staticmethod
    def _observe_stages(pred: Prediction) -> None:
        metrics.observe_reading(pred)

    def _publish(self, pipe: redis.client.Pipeline, item: _Ready, pred: Prediction, seconds: float,
                 hinted: bool = False) -> None:
        frame = item.frame
        # a candidate: its capture takes the next frame now
        ask_for_burst(self.client, self.keys, frame, pred, sent=hinted)
        assert pred.label in ("none", "victory", "defeat", "draw")
        msg = Label(
            channel=frame.channel,
            seq=frame.seq,
            captured_at=frame.captured_at,
            label=pred.label,  # type: ignore[arg-type]
            confidence=pred.confidence,
            probs=pred.probs,
            model=self.classifier.model_id,
            worker=self.name,
            infer_ms=round(seconds * 1000.0, 3),
            read=pred.read,
            score=pred.score,
        )
        xadd_message(pipe, self.keys.labels, msg, maxlen=self.settings.labels_maxlen)
        # in cooldown a frame labelled from a reused reading is not kept (the banner's frame that was read is;
        # nothing in cooldown is counted, so no event points at its near-identical followers, ~30 KB each)
        repeat = pred.stages.get("cooldown") and (pred.stages.get("reader") or {}).get("reused")
        if (msg.outcome is not None or pred.near_miss) and not repeat:
            # the frame and what each stage saw: the admin page's thumbnail and explanation,
            # and labelled samples for `owc collect`
            ttl = self.settings.detframe_ttl_s
            info = {"label": pred.label, "confidence": round(pred.confidence, 4), "model": self.classifier.model_id,
                    "captured_at": frame.captured_at, "stages": pred.stages}
            pipe.set(self.keys.detframe(frame.channel, frame.seq), frame.image, ex=ttl)
            pipe.set(self.keys.detinfo(frame.channel, frame.seq), json.dumps(info, ensure_ascii=False), ex=ttl)
        if pred.near_miss:
            self._near.record(frame, pred)
        metrics.FRAMES.inc()
        metrics.LABELS_BY_CLASS[pred.label].inc()
        self._note(frame.channel, pred.label, pred.confidence)

    def _poison(self, pipe: redis.client.Pipeline, delivery: Delivery, reason: str) -> bool:
        """An error label for a malformed frame; True if the caller should ack it.

        Without a readable channel and seq no label can say which frame it
        was, so the entry goes to the dead-letter stream (which acks it).
        """
        identity = group.salvage_identity(delivery.fields)
        if identity is None:
            log.warning("frame %s is unreadable (%s): dead-lettering it", delivery.id_str, reason)
            self.consumer.dead_letter(delivery, f"poison: {reason}")
            self._count_dead_letters()
            return False
        channel, seq, captured_at = identity
        self._error_label(pipe, channel, seq, captured_at, reason)
        return True

    def _error_label(self, pipe: redis.client.Pipeline, channel: str, seq: int, captured_at: int, reason: str) -> None:
        log.warning("frame %s #%d: %s; publishing an error label", channel, seq, reason)
        metrics.DROPPED_POISON.inc()
        msg = group.error_label(channel, seq, captured_at, reason, model=self.classifier.model_id, worker=self.name)
        xadd_message(pipe, self.keys.labels, msg, maxlen=self.settings.labels_maxlen)
        metrics.LABELS_BY_CLASS[msg.label].inc()
        self._note(channel, msg.label, 0.0)

    # health ---------------------------------------------------------------
    def _note(self, channel: str, label: str, confidence: float) -> None:
        self._notes[channel] = (label, confidence, int(self.clock() * 1000))

    def _record(self, channel: str) -> InferenceHealth:
        label, confidence, at = self._notes[channel]
        return InferenceHealth(
            last_label=label,
            last_confidence=round(confidence, 4),
            last_label_at=at,
            model=self.classifier.model_id,
            worker=self.name,
        ).updated(**self._near.fields(channel))

    def _publish_health(self, force: bool = False) -> None:
        now = time.monotonic()
        if now - self._beat_sent >= health.WORKER_BEAT_S:  # running, frames or not
            health.worker_beat(self.client, self.keys, self.name, model=self.classifier.model_id)
            self._beat_sent = now
        for channel in self._notes:
            if not force and now - self._health_sent.get(channel, float("-inf")) < HEALTH_INTERVAL_S:
                continue  # not due whatever it holds (the cadence's interval): not built at all
            record = self._record(channel)
            if force or self._health_cadence.due(channel, record, now):  # unchanged: every HEALTH_REFRESH_S
                try:
                    health.publish(self.client, self.keys, channel, record)
                except (redis.ConnectionError, redis.TimeoutError):
                    if force:
                        return
                    raise
                self._health_cadence.sent(channel, record, now)
                self._health_sent[channel] = now


def _source(frame: Frame) -> tuple[bytes, int | None, int | None]:
    return frame.image, frame.width, frame.height
