"""The long false-positive run: hours of ``none`` frames through the detector and the real counting rules.

Rendering 144,000 distinct frames (10 h at 4 fps) would take hours, so a pool
of distinct ``none`` scenes (gameplay-like scenes and every hard negative of
:mod:`training.synth.negatives`, held-out fonts and photos) is rendered once
and cached, then the timeline is built by holding each scene for a random
2-8 s, every frame of a hold with its own cheap jitter: a shift of up to
±3 px, a brightness/contrast change of a few percent and a JPEG re-encode at
q60-92. Every frame goes through the detector's ``classify`` and its label
through ``services.state.rules.transition`` with the default rules, in
capture-time order, 250 ms apart; every ``detected`` event is a false count.
Each Label carries what the worker publishes live: the probabilities, the
reader's ``read`` and ``score``, so the rules' banner evidence (near-miss runs
that add up, docs/rules.md) is measured as it runs.

``classify`` reads the gate's candidates only, each afresh. ``--live``
(:func:`fp_run_live`) runs the same timeline, the same bytes, as one live
channel instead: one ``BannerReader`` with the reader's schedule and reuse from
the model's metadata (the reads the gate did not ask for — ``settle``,
``follow``, ``every`` — and a reading reused on the next frames), its phase
from the rules its labels feed (:class:`training.live.LiveChannel`). Each
frame depends on the ones before it, so it runs in one process.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from services.common.config.settings import StateSettings
from services.common.contracts.messages import Label
from services.state.machine import Machine
from services.state.rules import LabelInput, Rules, transition
from training import kernels
from training.frames import Detector, FrameTuple, GateScorer, Rendered

if TYPE_CHECKING:
    from services.inference.banner import Schedule
    from services.inference.classifier import Classifier

FPS = 4
HOLD_S = (2.0, 8.0)
LABELS = ("none", "victory", "defeat", "draw", "error")
READS = ("", "victory", "defeat", "draw")  # a Prediction's ``read``: "" or the outcome the reader saw
THRESHOLDS = (0.1, 0.2, 0.3)
FP_SEED = 2001  # the false-positive pool: held-out split, a seed nothing else uses
FP_HOURS = 10.0
FP_POOL = 3000
FP_SIZE = (640, 360)  # the capture's default size
RECENT = 6  # frames listed with a live false count: the one that counted and the ones before it


@dataclass(frozen=True)
class Segment:
    scene: int  # index into the pool
    start: int  # first frame index on the timeline
    frames: int
    seed: int  # of this segment's jitter


def plan(pool_size: int, hours: float, seed: int, fps: int = FPS) -> list[Segment]:
    """The timeline: random scenes, each held 2-8 s, until ``hours`` are covered."""
    rng = np.random.default_rng([seed, 7])
    total = round(hours * 3600 * fps)
    out: list[Segment] = []
    start = 0
    while start < total:
        n = min(total - start, max(1, round(float(rng.uniform(*HOLD_S)) * fps)))
        out.append(Segment(int(rng.integers(0, pool_size)), start, n, int(rng.integers(0, 2**31))))
        start += n
    return out


def jitter(padded: npt.NDArray[np.uint8], rng: np.random.Generator, pad: int = 3) -> bytes:
    """One frame of a held scene (``padded``: the scene with ``pad`` replicated pixels around it).

    A shift of up to ±``pad`` px, a brightness/contrast change of up to ±7%, a JPEG re-encode at q60-92.
    """
    h, w = padded.shape[0] - 2 * pad, padded.shape[1] - 2 * pad
    dx, dy = (int(v) for v in rng.integers(-pad, pad + 1, size=2))
    view = padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    gain, bias = float(rng.uniform(0.93, 1.07)), float(rng.uniform(-8, 8))
    lut = np.clip(np.arange(256, dtype=np.float32) * gain + bias, 0, 255).astype(np.uint8)
    out = cv2.LUT(view, lut)
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 93))])
    if not ok:
        raise RuntimeError("JPEG encode failed")
    return bytes(enc.tobytes())


@dataclass
class Chunk:
    labels: npt.NDArray[np.uint8]  # index into LABELS
    confidence: npt.NDArray[np.float32]
    gate: npt.NDArray[np.float32]  # 1 - p(none) of the gate alone
    probs: npt.NDArray[np.float64]  # (frames, len(LABELS)): the published probabilities, NaN where absent
    read: npt.NDArray[np.uint8]  # index into READS
    score: npt.NDArray[np.float64]  # the reader's best word score, NaN when it did not run

    def label(self, i: int, channel: str, captured_at: int) -> Label:
        """Frame ``i`` as the worker publishes it (label, confidence, probabilities, read, score)."""
        row = self.probs[i].tolist()
        score = float(self.score[i])
        return Label(channel=channel, seq=i, captured_at=captured_at, label=LABELS[int(self.labels[i])],  # type: ignore[arg-type]
                     confidence=float(self.confidence[i]),
                     probs={k: p for k, p in zip(LABELS, row, strict=True) if not np.isnan(p)},
                     model="", worker="fp", infer_ms=0.0, read=READS[int(self.read[i])],
                     score=None if np.isnan(score) else score)

    @classmethod
    def concat(cls, parts: Sequence[Chunk]) -> Chunk:
        return cls(np.concatenate([p.labels for p in parts]), np.concatenate([p.confidence for p in parts]),
                   np.concatenate([p.gate for p in parts]), np.concatenate([p.probs for p in parts]),
                   np.concatenate([p.read for p in parts]), np.concatenate([p.score for p in parts]))


def _probs_row(probs: dict[str, float]) -> list[float]:
    unknown = set(probs) - set(LABELS)
    if unknown:
        raise ValueError(f"a prediction's probabilities name unknown labels: {sorted(unknown)}")
    return [float(probs[k]) if k in probs else float("nan") for k in LABELS]


def run_segments(
    segments: Sequence[Segment], pool: Sequence[Rendered], detector: Detector, gate: GateScorer | None,
    batch: int = 64, progress: Callable[[int], object] | None = None,
) -> Chunk:
    """Jitter and classify the frames of ``segments``; ``gate`` None means the detector is the gate alone."""
    n = sum(s.frames for s in segments)
    labels = np.zeros(n, np.uint8)
    conf = np.zeros(n, np.float32)
    gates = np.full(n, np.nan, np.float32)
    probs = np.full((n, len(LABELS)), np.nan, np.float64)
    reads = np.zeros(n, np.uint8)
    scores = np.full(n, np.nan, np.float64)
    pending: list[FrameTuple] = []
    at = 0

    def flush() -> None:
        nonlocal at, pending
        if not pending:
            return
        preds = detector.classify(pending)
        k = len(pending)
        labels[at:at + k] = [LABELS.index(p.label) for p in preds]
        conf[at:at + k] = [p.confidence for p in preds]
        probs[at:at + k] = [_probs_row(p.probs) for p in preds]
        reads[at:at + k] = [READS.index(p.read) for p in preds]
        scores[at:at + k] = [np.nan if p.score is None else p.score for p in preds]
        if gate is not None:
            gates[at:at + k] = gate.scores(pending)
        else:  # a gate-only detector: its probabilities are the gate's
            gates[at:at + k] = [1.0 - p.probs.get("none", 0.0) for p in preds]
        at += k
        if progress is not None:
            progress(k)
        pending = []

    for _seg, frame in timeline(pool, segments):
        pending.append(frame)
        if len(pending) >= batch:
            flush()
    flush()
    return Chunk(labels, conf, gates, probs, reads, scores)


# worker processes (fork): the pool and the detector factory are inherited
_POOL: Sequence[Rendered] = ()
_FACTORY: Callable[[], tuple[Detector, GateScorer | None]] | None = None
_WORKER: tuple[Detector, GateScorer | None] | None = None


def _worker_run(segments: list[Segment]) -> Chunk:
    global _WORKER
    if _WORKER is None:
        assert _FACTORY is not None
        _WORKER = _FACTORY()
    det, gate = _WORKER
    return run_segments(segments, _POOL, det, gate)


@dataclass
class FpResult:
    hours: float
    frames: int
    pool: int
    segments: int
    false_counts: list[dict[str, Any]] = field(default_factory=list)
    outcome_frames: int = 0
    confident_outcome_frames: int = 0
    gate_rate: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0
    live: bool = False
    fresh_reads: int = 0  # live: frames the reader read afresh
    cpu_ms: float = 0.0  # live: the detector's CPU time over all frames
    reader: dict[str, Any] = field(default_factory=dict)  # live: the BannerReader's stats

    @property
    def per_hour(self) -> float:
        return len(self.false_counts) / self.hours if self.hours else float("nan")


def count(
    pool: Sequence[Rendered], chunk: Chunk, segments: Sequence[Segment], rules: Rules, fps: int = FPS
) -> list[dict[str, Any]]:
    """Feed the labels (with the reader's evidence) through the counting rules in order; every ``detected``
    event is a false count."""
    step = 1000 // fps
    t0 = 1_700_000_000_000
    machine = Machine()
    kind_at = np.zeros(len(chunk.labels), np.int32)
    for s in segments:
        kind_at[s.start:s.start + s.frames] = s.scene
    out: list[dict[str, Any]] = []
    for i in range(len(chunk.labels)):
        t = t0 + i * step
        machine, events = transition(machine, LabelInput(label=chunk.label(i, "fp", t), now=t), rules)
        for e in events:
            if e.type == "detected":
                scene = pool[int(kind_at[i])]
                out.append({"at_s": round(i / fps, 2), "outcome": e.outcome, "confidence": e.confidence,
                            "kind": scene.info.get("kind", "?"), "scene": int(kind_at[i])})
    return out


def fp_run(
    pool: Sequence[Rendered],
    hours: float,
    factory: Callable[[], tuple[Detector, GateScorer | None]],
    seed: int = 2024,
    workers: int = 2,
    rules: Rules | None = None,
    progress: bool = True,
    thresholds: Sequence[float] = THRESHOLDS,
) -> FpResult:
    """Run ``hours`` of held ``none`` scenes through the detector and the rules (default state settings)."""
    global _POOL, _FACTORY, _WORKER
    started = time.monotonic()
    rules = rules or Rules.from_settings(StateSettings.model_validate({}))
    segments = plan(len(pool), hours, seed)
    total = sum(s.frames for s in segments)
    from training.dataset import _progress

    bar = _progress(total=total, desc=f"false-positive run ({hours:g} h at {FPS} fps)") if progress else None
    parts = max(1, workers) * 8
    size = max(1, (len(segments) + parts - 1) // parts)
    chunks_of = [segments[i:i + size] for i in range(0, len(segments), size)]
    results: list[Chunk] = []
    if workers <= 1:
        det, gate = factory()
        for segs in chunks_of:
            results.append(run_segments(segs, pool, det, gate, progress=bar.update if bar else None))
    else:
        _POOL, _FACTORY, _WORKER = pool, factory, None
        try:
            with mp.get_context("fork").Pool(workers) as mpool:
                for segs, part in zip(chunks_of, mpool.imap(_worker_run, chunks_of), strict=True):
                    results.append(part)
                    if bar:
                        bar.update(sum(s.frames for s in segs))
        finally:
            _POOL, _FACTORY, _WORKER = (), None, None
    if bar:
        bar.close()
    chunk = Chunk.concat(results)
    res = FpResult(hours=hours, frames=total, pool=len(pool), segments=len(segments))
    res.false_counts = count(pool, chunk, segments, rules)
    outcome = chunk.labels > 0
    outcome &= chunk.labels < LABELS.index("error")
    res.outcome_frames = int(outcome.sum())
    res.confident_outcome_frames = int((outcome & (chunk.confidence >= rules.min_confidence)).sum())
    scene_of = np.zeros(total, np.int32)
    for s in segments:
        scene_of[s.start:s.start + s.frames] = s.scene
    kinds = np.asarray([str(pool[int(i)].info.get("kind", "?")) for i in scene_of])
    _summarise(res, kinds, outcome, chunk.gate, thresholds)
    res.wall_s = time.monotonic() - started
    return res


def _summarise(res: FpResult, kinds: npt.NDArray[np.str_], outcome: npt.NDArray[np.bool_],
               gates: npt.NDArray[np.floating[Any]], thresholds: Sequence[float]) -> None:
    """``res``'s gate rates and per-kind rows from every frame's scene kind, outcome flag and gate score (NaN: not
    scored)."""
    scored = ~np.isnan(gates)
    if scored.any():
        res.gate_rate = {f"{t:g}": float((gates[scored] >= t).mean()) for t in thresholds}
    for k, n in sorted(Counter(kinds.tolist()).items()):
        m = kinds == k
        row: dict[str, Any] = {"frames": n, "outcome_frames": int((outcome & m).sum()),
                               "false_counts": len([f for f in res.false_counts if f["kind"] == k])}
        if scored.any():
            row["gate_0.2"] = float((gates[m & scored] >= 0.2).mean()) if (m & scored).any() else float("nan")
        res.by_kind[k] = row


def timeline(pool: Sequence[Rendered], segments: Sequence[Segment]) -> Iterator[tuple[Segment, FrameTuple]]:
    """Every frame of ``segments`` in order, with its segment: the bytes :func:`run_segments` classifies."""
    for seg in segments:
        scene = pool[seg.scene]
        with kernels.rendering():  # per frame: the detector between two frames runs the service's kernels
            decoded = cv2.imdecode(np.frombuffer(scene.data, np.uint8), cv2.IMREAD_COLOR)
            if decoded is None:
                raise ValueError(f"pool scene {seg.scene} is not a decodable image")
            padded = np.asarray(cv2.copyMakeBorder(decoded, 3, 3, 3, 3, cv2.BORDER_REPLICATE), np.uint8)
        rng = np.random.default_rng(seg.seed)
        for _ in range(seg.frames):
            with kernels.rendering():
                data = jitter(padded, rng)
            yield seg, (data, scene.width, scene.height)


def fp_run_live(
    pool: Sequence[Rendered],
    hours: float,
    clf: Classifier,
    seed: int = 2024,
    rules: Rules | None = None,
    schedule: Schedule | None = None,
    progress: bool = True,
    thresholds: Sequence[float] = THRESHOLDS,
) -> FpResult:
    """The same timeline as :func:`fp_run` (:func:`plan`, :func:`jitter`) as one live channel: every frame, in capture
    order 1000/FPS ms apart, through one BannerReader (the reader's schedule and reuse from the model's metadata
    unless ``schedule`` is given) whose phase comes from the rules its labels feed (:class:`training.live.LiveChannel`).

    Serial by nature: each frame's schedule, reuse and phase depend on every frame before it. A false count lists
    the last :data:`RECENT` frames as the detector saw them (why the reader ran, what it read, its score, whether
    the reading was reused)."""
    from training.dataset import _progress
    from training.episode_eval import _frame_record
    from training.live import LiveChannel

    started = time.monotonic()
    rules = rules or Rules.from_settings(StateSettings.model_validate({}))
    segments = plan(len(pool), hours, seed)
    total = sum(s.frames for s in segments)
    bar = _progress(total=total, desc=f"false-positive run, live ({hours:g} h at {FPS} fps)") if progress else None
    chan = LiveChannel(clf, rules, schedule, channel="fp", worker="fp")
    step_ms = 1000 // FPS
    t0 = 1_700_000_000_000
    res = FpResult(hours=hours, frames=total, pool=len(pool), segments=len(segments), live=True)
    gates = np.full(total, np.nan, np.float64)
    outcome = np.zeros(total, bool)
    kinds: list[str] = []
    recent: list[dict[str, Any]] = []
    for i, (seg, (data, w, h)) in enumerate(timeline(pool, segments)):
        step = chan.step(t0 + i * step_ms, data, w, h)
        pred = step.pred
        kind = str(pool[seg.scene].info.get("kind", "?"))
        kinds.append(kind)
        res.cpu_ms += step.cpu_ms
        res.fresh_reads += step.fresh_read
        score = (pred.stages.get("gate") or {}).get("score")
        if score is not None:
            gates[i] = float(score)
        if pred.label not in ("none", "error"):
            outcome[i] = True
            res.outcome_frames += 1
            res.confident_outcome_frames += pred.confidence >= rules.min_confidence
        recent = [*recent[1 - RECENT:], _frame_record(i - seg.start, 0, pred, step.cpu_ms)]
        for e in step.events:
            if e.type == "detected":
                res.false_counts.append({"at_s": round(i / FPS, 2), "outcome": e.outcome, "confidence": e.confidence,
                                         "kind": kind, "scene": seg.scene, "frame_in_scene": i - seg.start,
                                         "recent": list(recent)})
        if bar and i % 256 == 255:
            bar.update(256)
    if bar:
        bar.update(total % 256)
        bar.close()
    res.reader = chan.reader.stats.as_dict()
    _summarise(res, np.asarray(kinds), outcome, gates, thresholds)
    res.wall_s = time.monotonic() - started
    return res


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.fp_run``: the long false-positive run alone (the card's section (b)), in one command."""
    import argparse
    import json
    import os
    import sys
    from pathlib import Path

    from services.inference.classifier import Classifier
    from training import synth
    from training.config import CACHE_DIR, MODEL_PATH
    from training.frames import Gate, cached_render, is_gate_only

    ap = argparse.ArgumentParser(prog="python -m training.fp_run", description=main.__doc__)
    ap.add_argument("--model", type=Path, default=MODEL_PATH)
    ap.add_argument("--hours", type=float, default=FP_HOURS)
    ap.add_argument("--pool", type=int, default=FP_POOL)
    ap.add_argument("--workers", type=int, default=None, help="processes of the (non-live) run (default 2)")
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--pool-seed", type=int, default=FP_SEED,
                    help=f"seed of the scene pool (default {FP_SEED}, the card's); another seed gives a pool of new "
                         "scenes, a check independent of anything tuned on the card's pool")
    ap.add_argument("--live", action="store_true",
                    help="every frame through one live channel (the reader's schedule and reuse, its phase from the "
                         "rules), in one process: the schedule depends on every frame before, so --workers is ignored")
    args = ap.parse_args(argv)
    started = time.monotonic()
    if args.live and args.workers is not None:
        print(f"--live runs in one process (frame after frame); --workers {args.workers} ignored", file=sys.stderr)
    synth.ensure_fonts(synth.EVAL)
    pool = cached_render(args.pool_seed, args.pool, synth.EVAL, args.cache_dir, label="none", size=FP_SIZE,
                         desc="false-positive scene pool")
    model = args.model
    gate_only = is_gate_only(Classifier(model))

    def factory() -> tuple[Detector, GateScorer | None]:
        return Classifier(model), None if gate_only else Gate(model)

    if args.live:
        load = os.getloadavg()
        res = fp_run_live(pool, args.hours, Classifier(model))
    else:
        res = fp_run(pool, args.hours, factory, workers=2 if args.workers is None else args.workers)
    out: dict[str, Any] = {
        "model": Classifier(model).model_id, "pool_seed": args.pool_seed, "hours": res.hours, "frames": res.frames,
        "false_counts": res.false_counts, "per_hour": res.per_hour,
        "outcome_frames": res.outcome_frames, "confident_outcome_frames": res.confident_outcome_frames,
        "gate_rate": res.gate_rate, "run_s": round(res.wall_s, 1), "total_s": round(time.monotonic() - started, 1)}
    if args.live:
        out.update({"live": True, "fresh_reads": res.fresh_reads,
                    "cpu_ms_per_frame": round(res.cpu_ms / res.frames, 3) if res.frames else None,
                    "reader": res.reader, "by_kind": res.by_kind,
                    "load_start": [round(v, 2) for v in load],
                    "load_end": [round(v, 2) for v in os.getloadavg()]})
    print(json.dumps(out, indent=1, default=str))
    return 0 if not res.false_counts else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
