"""One channel as it runs live, for training's evaluations: the worker's detector and the state service's rules.

A :class:`services.inference.banner.BannerReader` (the gate, the reader's schedule and reuse from the model's
metadata unless a schedule is given) whose phase hint comes from the :class:`services.state.machine.Machine` that
its own labels feed through :func:`services.state.rules.transition`, frames in capture order on a clock that is
the frames' capture time. ``training.fp_run --live`` runs its timeline through it, and
``training.episode_eval``'s ``run_episode`` each episode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.common.contracts.messages import Event, Label
from services.inference.banner import BannerReader, Schedule
from services.inference.classifier import Classifier, Prediction
from services.state.machine import Machine
from services.state.rules import LabelInput, Rules, transition


@dataclass(frozen=True)
class Step:
    pred: Prediction
    events: list[Event]
    cpu_ms: float  # the detector's CPU time for this frame (this thread; decoding, gate and any reading)

    @property
    def fresh_read(self) -> bool:
        """The reader read this frame afresh (not a reading reused from an earlier frame)."""
        reader = self.pred.stages.get("reader")
        return isinstance(reader, dict) and not reader.get("reused")


class LiveChannel:
    def __init__(self, clf: Classifier, rules: Rules, schedule: Schedule | None = None, channel: str = "live",
                 worker: str = "live") -> None:
        self.clf, self.rules, self.channel, self.worker = clf, rules, channel, worker
        self.machine = Machine()
        self.now_ms = 0
        self.seq = 0
        self.reader = BannerReader(clf, schedule, phase=lambda _ch: (self.machine.phase, self.machine.cooldown_until),
                                   clock=lambda: self.now_ms / 1000.0)

    def step(self, captured_at: int, data: bytes, width: int | None, height: int | None) -> Step:
        """One encoded frame captured at ``captured_at`` (ms, after the previous frame's) through the detector and
        the rules."""
        self.now_ms = captured_at
        c0 = time.thread_time()
        pred = self.reader.classify_frame(self.channel, captured_at, data, width, height)
        cpu_ms = (time.thread_time() - c0) * 1000.0
        self.seq += 1
        label = Label(channel=self.channel, seq=self.seq, captured_at=captured_at, label=pred.label,  # type: ignore[arg-type]
                      confidence=pred.confidence, probs=pred.probs, model=self.clf.model_id, worker=self.worker,
                      infer_ms=0.0, read=pred.read, score=pred.score)
        self.machine, events = transition(self.machine, LabelInput(label, captured_at), self.rules)
        return Step(pred, events, cpu_ms)
