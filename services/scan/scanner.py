"""The detector and the counting rules over a recording's samples: the results, their scores, the near misses.

Each sample is turned into the frame the live counter would get (stretched to
``capture.width``×``capture.height`` and encoded as ``capture.image_format``
at ``capture.quality``, by capture's own encoder), classified as the
inference worker does (the real :class:`~services.inference.classifier.Classifier`
through :class:`~services.inference.banner.BannerReader`: the reader's schedule
and reuse, the phase taken from the scan's own rules) and its label fed to the
real counting rules (:func:`services.state.rules.transition`) with the
frame's position in the recording as its ``captured_at``. A ``detected``
event is a result. Decoding runs in a second thread, so a video's decoder
and the detector use two cores.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from services.capture.encode import encode_image
from services.common.config.sections import CaptureSettings
from services.common.contracts.messages import Label
from services.common.contracts.scanimport import ScanResult
from services.inference.banner import BannerReader
from services.inference.classifier import Classifier, Prediction
from services.inference.vision import FrameDecodeError
from services.scan.recording import Recording, Sample
from services.state.machine import Machine
from services.state.rules import LabelInput, Rules, transition

PREFETCH = 8  # decoded samples waiting for the detector


@dataclass
class FrameScore:
    """What the stages said about one frame (the frames of a result, a near miss)."""

    seq: int
    at_ms: int
    label: str
    confidence: float
    gate: float | None  # the gate's banner score (None: single-stage model)
    reader: float | None  # the reader's mean log-probability per letter for the outcome (None: not read)
    text: str = ""

    @classmethod
    def of(cls, seq: int, at_ms: int, pred: Prediction, outcome: str) -> FrameScore:
        gate = pred.stages.get("gate") or {}
        reader = pred.stages.get("reader") or {}
        score = (reader.get("scores") or {}).get(outcome)
        return cls(seq, at_ms, pred.label, round(pred.confidence, 4),
                   None if "score" not in gate else round(float(gate["score"]), 4),
                   None if score is None else round(float(score), 3), str(reader.get("text", ""))[:40])


@dataclass
class Found:
    """A result: the outcome the rules counted, when, and the frames that made it."""

    outcome: str
    at_ms: int  # the frame that made it count
    confidence: float  # the rules' confidence (the weakest frame of the streak)
    frames: list[FrameScore]

    def result(self) -> ScanResult:
        return ScanResult(self.outcome, self.at_ms, self.confidence)  # type: ignore[arg-type]


@dataclass
class NearMiss:
    """Frames in a row where the reader saw an outcome word but not clearly enough, while a result could count."""

    outcome: str
    frames: list[FrameScore]

    @property
    def at_ms(self) -> int:
        return self.frames[0].at_ms


@dataclass
class ScanReport:
    recording: Recording
    model: str
    interval_ms: int
    results: list[Found] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    frames: int = 0
    candidates: int = 0  # frames the reader read
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, int]:
        out = {"victory": 0, "defeat": 0, "draw": 0}
        for r in self.results:
            out[r.outcome] += 1
        return out


def _prefetched(samples: Iterator[Sample], stop: threading.Event) -> Iterator[Sample]:
    """``samples`` decoded in a thread, at most :data:`PREFETCH` ahead (its errors re-raised here)."""
    q: queue.Queue[Sample | BaseException | None] = queue.Queue(PREFETCH)

    def put(item: Sample | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for sample in samples:
                if not put(sample):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
            return
        put(None)

    thread = threading.Thread(target=produce, name="scan-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class Scanner:
    def __init__(self, classifier: Classifier, rules: Rules, capture: CaptureSettings, channel: str = "scan") -> None:
        self.classifier = classifier
        self.rules = rules
        self.capture = capture
        self.channel = channel
        self._machine = Machine()
        self._at_ms = 0
        self.banner = self._banner()

    def _banner(self) -> BannerReader:
        """The worker's detector per channel (the reader's schedule and memory), its phase hint taken from the
        scan's own rules and refreshed once per second of recording time, as live once per second."""
        return BannerReader(self.classifier, phase=lambda _channel: (self._machine.phase, self._machine.cooldown_until),
                            clock=lambda: self._at_ms / 1000.0)

    def frame_bytes(self, image: Any) -> bytes:
        c = self.capture
        return encode_image(image, c.image_format, c.width, c.height, c.quality)

    def predict(self, at_ms: int, data: bytes, machine: Machine) -> Prediction:
        """The detector on one frame as the inference worker runs it: gate, the reader on candidates and on its
        schedule, readings reused while the banner holds still (``machine``: the rules' state, for the phase)."""
        c = self.capture
        self._machine, self._at_ms = machine, at_ms
        return self.banner.classify_frame(self.channel, at_ms, data, c.width, c.height)

    def label(self, seq: int, at_ms: int, pred: Prediction) -> Label:
        """The label the inference worker would publish for this prediction."""
        return Label(channel=self.channel, seq=seq, captured_at=at_ms, label=pred.label,  # type: ignore[arg-type]
                     confidence=pred.confidence, probs=pred.probs, model=self.classifier.model_id, worker="scan",
                     infer_ms=0.0, read=pred.read, score=pred.score)

    def scan(self, recording: Recording, interval_ms: int,
             progress: Callable[[int, int], None] | None = None) -> ScanReport:
        """Every sample through the detector and the rules; ``progress(frames, position ms)`` after each."""
        report = ScanReport(recording, self.classifier.model_id, interval_ms)
        machine = Machine()
        self.banner = self._banner()  # a recording is a channel of its own, from its first frame
        recent: deque[FrameScore] = deque(maxlen=64)  # the frames before a result (its streak)
        streak_outcome, streak_frames = "", 0
        near: NearMiss | None = None
        started = time.perf_counter()
        stop = threading.Event()
        for seq, sample in enumerate(_prefetched(recording.samples(interval_ms), stop)):
            pred: Prediction | None = None
            if sample.image is not None:
                try:
                    pred = self.predict(sample.at_ms, self.frame_bytes(sample.image), machine)
                except FrameDecodeError as exc:
                    sample.error = str(exc)
            if pred is None:
                report.errors.append(f"{sample.at_ms} ms: {sample.error}")
                label = Label(channel=self.channel, seq=seq, captured_at=sample.at_ms, label="error",
                              confidence=0.0, probs={}, model=self.classifier.model_id, worker="scan", infer_ms=0.0,
                              error=sample.error[:500])
                machine, _ = transition(machine, LabelInput(label, sample.at_ms), self.rules)
                report.frames += 1
                near, streak_outcome, streak_frames = None, "", 0
                continue
            report.frames += 1
            if "reader" in pred.stages:
                report.candidates += 1
            outcome = pred.label if pred.label != "none" else (pred.near_miss or "")
            score = FrameScore.of(seq, sample.at_ms, pred, outcome)
            recent.append(score)
            streak_frames = streak_frames + 1 if pred.label == streak_outcome else 1
            streak_outcome = pred.label
            ready = machine.phase == "ready"
            machine, events = transition(machine, LabelInput(self.label(seq, sample.at_ms, pred), sample.at_ms),
                                         self.rules)
            for ev in events:
                if ev.type == "detected" and ev.outcome is not None:
                    frames = list(recent)[-min(streak_frames, len(recent)):]
                    report.results.append(Found(ev.outcome, sample.at_ms, float(ev.confidence or 0.0), frames))
            if pred.near_miss and ready and pred.label == "none":
                if near is not None and near.outcome == pred.near_miss:
                    near.frames.append(score)
                else:
                    near = NearMiss(pred.near_miss, [score])
                    report.near_misses.append(near)
            else:
                near = None
            if progress is not None:
                progress(report.frames, sample.at_ms)
        report.seconds = time.perf_counter() - started
        return report
