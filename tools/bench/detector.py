"""The detector's stages on frame *sequences*, in this process (no Redis): what ``owc bench inference``
prints as ``detector``, and the reader's score margin (``python -m tools.bench.detector margin``).

Sequences, because the reader's schedule and reuse (:mod:`services.inference.banner`) depend on what the
channel showed before: gameplay with a moving camera that sometimes stops, the demo clip, hard cuts (the
bench's unrelated frames), and banner episodes of every outcome in several colours (entry animation, then
3 s steady at 4 fps) through the real counting rules. The sequences are drawn by
:mod:`training.synth.episodes` (also the episode evaluation's, ``python -m training.episode_eval``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench.report import percentile
from training.synth.episodes import BENCH_COLOURS as COLOURS
from training.synth.episodes import FPS
from training.synth.episodes import pan_episode as episode
from training.synth.episodes import pan_gameplay as gameplay

Frame = tuple[bytes, int, int]


def run_sequence(reader: Any, frames: Sequence[Frame], channel: str = "c", t0: int = 0) -> dict[str, Any]:
    """CPU per frame of the whole detector (schedule and reuse included) over a sequence."""
    from services.inference.banner import Stats

    reader.stats = Stats()
    reader.forget(channel)
    cpu: list[float] = []
    preds = []
    for i, (data, w, h) in enumerate(frames):
        c0 = time.thread_time()
        preds.append(reader.classify_frame(channel, t0 + i * 1000 // FPS, data, w, h))
        cpu.append((time.thread_time() - c0) * 1000.0)
    arr = np.asarray(cpu)
    return {"frames": len(frames), "cpu_ms_mean": round(float(arr.mean()), 3),
            "cpu_ms_p50": round(percentile(arr, 50), 3), "cpu_ms_p99": round(percentile(arr, 99), 3),
            **split_reads(preds, cpu), "stats": reader.stats.as_dict(), "_preds": preds, "_cpu": cpu}


def split_reads(preds: Sequence[Any], cpu: Sequence[float]) -> dict[str, Any]:
    """Where a sequence's mean goes: the frames the reader read afresh (their mean, and their share of the
    sequence's mean per frame) and all the others (the gate path and the schedule's bookkeeping)."""
    read = [isinstance(p.stages.get("reader"), dict) and not p.stages["reader"].get("reused") for p in preds]
    fresh = [c for r, c in zip(read, cpu, strict=True) if r]
    rest = [c for r, c in zip(read, cpu, strict=True) if not r]
    n = max(1, len(cpu))
    return {"fresh_reads": len(fresh),
            "fresh_read_cpu_ms_mean": round(float(np.mean(fresh)), 3) if fresh else None,
            "fresh_reads_cpu_ms_per_frame": round(sum(fresh) / n, 3),
            "other_frames_cpu_ms_mean": round(float(np.mean(rest)), 3) if rest else None}


def count_episode(preds: Sequence[Any]) -> tuple[list[str], int | None]:
    """The real counting rules over an episode's labels: outcomes counted and the frame that counted."""
    from services.common.contracts.messages import Label
    from services.state.machine import Machine
    from services.state.rules import LabelInput, Rules, transition

    m, counted, at = Machine(), [], None
    for i, p in enumerate(preds):
        label = Label("c", i + 1, i * 1000 // FPS, p.label, p.confidence, p.probs, "m", "w", 1.0,
                      read=p.read, score=p.score)
        m, events = transition(m, LabelInput(label, now=i), Rules())
        for e in events:
            if e.type == "detected":
                counted.append(str(e.outcome))
                at = i if at is None else at
    return counted, at


def run_episode_live(clf: Any, frames: Sequence[Frame], channel: str = "c") -> dict[str, Any]:
    """An episode as a live channel sees it: the reader's phase hint from the counting rules' state after each
    frame (as the worker reads it from the state snapshot; ``owc scan`` and the episode evaluation do the
    same), so the frames after the count are in cooldown. Outcomes counted, the counting frame, the CPU and
    the predictions per frame."""
    from services.common.contracts.messages import Label
    from services.inference.banner import BannerReader
    from services.state.machine import Machine
    from services.state.rules import LabelInput, Rules, transition

    state = [Machine()]
    reader = BannerReader(clf, phase=lambda _ch: (state[0].phase, state[0].cooldown_until))
    reader.clock = lambda: float(len(cpu)) * 10.0  # the phase is asked afresh for every frame that is read
    counted: list[str] = []
    at: int | None = None
    cpu: list[float] = []
    preds = []
    for i, (data, w, h) in enumerate(frames):
        t = i * 1000 // FPS
        c0 = time.thread_time()
        p = reader.classify_frame(channel, t, data, w, h)
        cpu.append((time.thread_time() - c0) * 1000.0)
        preds.append(p)
        label = Label(channel, i + 1, t, p.label, p.confidence, p.probs, "m", "w", 1.0,  # type: ignore[arg-type]
                      read=p.read, score=p.score)
        state[0], events = transition(state[0], LabelInput(label, now=t), Rules())
        for e in events:
            if e.type == "detected":
                counted.append(str(e.outcome))
                at = i if at is None else at
    return {"counted": counted, "at": at, "_cpu": cpu, "_preds": preds, "stats": reader.stats.as_dict()}


VARIANTS: dict[str, dict[str, Any]] = {
    # the gate alone decides what is read (before issue 21)
    "gate_only": {"every_n": 0, "follow": 0, "change": 1.0},
    "gate_and_every_n": {"change": 1.0},
    "gate_and_settle": {"every_n": 0},
    "default": {},
}


def compare_schedules(clf: Any, pan: Sequence[Frame], seed: int = 5) -> dict[str, Any]:
    """Each schedule variant: banner episodes counted right (every outcome x colour, one seed) and the
    reader's extra work and CPU on gameplay."""
    from services.inference.banner import BannerReader, Schedule

    eps = [(o, c, *episode(o, c, seed)) for o in ("victory", "defeat", "draw") for c in COLOURS]
    out: dict[str, Any] = {}
    for name, change in VARIANTS.items():
        reader = BannerReader(clf, Schedule(**change))
        game = run_sequence(reader, pan)
        right = [f"{o}/{c}" for o, c, frames, _start in eps
                 if count_episode(run_sequence(reader, frames)["_preds"])[0] == [o]]
        out[name] = {"episodes_counted_right": len(right), "episodes": len(eps),
                     "missed": sorted({f"{o}/{c}" for o, c, _f, _s in eps} - set(right)),
                     "gameplay_full_reads_per_100_frames": round(100 * game["stats"]["full_reads"] / len(pan), 2),
                     "gameplay_cpu_ms_mean": game["cpu_ms_mean"], "gameplay_cpu_ms_p50": game["cpu_ms_p50"]}
    return out


def detector_figures(model: Path, seeds: int = 2, variants: bool = True) -> dict[str, Any]:
    import cv2

    from services.inference import listcheck
    from services.inference.banner import BannerReader
    from services.inference.classifier import Classifier
    from services.inference.listcheck import NO_TEXT
    from tools.bench.frames import bench_frames

    cv2.setNumThreads(1)
    clf = Classifier(model, intra_op_threads=1, warmup_batch=1)
    reader = BannerReader(clf)
    demo_gameplay, banners = bench_frames()
    out: dict[str, Any] = {"schedule": reader.schedule.model_dump()}
    seqs = {"gameplay_pan": gameplay(), "bench_and_demo_gameplay": demo_gameplay}
    for name, frames in seqs.items():
        r = run_sequence(reader, frames)
        r.pop("_preds")
        r.pop("_cpu")
        out[name] = r
    # the stages, alone, on the pan: decode + crop, gate, one full reading, the list check
    frames = seqs["gameplay_pan"][:60]
    stage: dict[str, list[float]] = {"decode_and_crop": [], "gate": [], "reader": [], "list_check": []}
    strips_read: list[int] = []  # the list check's recogniser runs per frame (strips with text-like columns)
    assert clf.reader is not None
    for data, w, h in frames:
        c0 = time.thread_time()
        x = clf.preprocess(data, w, h)
        c1 = time.thread_time()
        clf.predict(x[None])
        c2 = time.thread_time()
        _, image = clf.reader.read_frame(data, w, h)
        c3 = time.thread_time()
        scores = clf.reader.neighbours(image)
        c4 = time.thread_time()
        strips_read.append(sum(1 for s in scores if s != NO_TEXT))
        for key, dt in zip(stage, (c1 - c0, c2 - c1, c3 - c2, c4 - c3), strict=True):
            stage[key].append(dt * 1000.0)
    out["stage_cpu_ms"] = {k: {"p50": round(percentile(np.asarray(v), 50), 3),
                               "p99": round(percentile(np.asarray(v), 99), 3)} for k, v in stage.items()}
    # what the list check's figure is made of: its CPU is the recogniser's runs on the strips that hold text
    out["stage_cpu_ms"]["list_check"]["strips_read_mean"] = round(float(np.mean(strips_read)), 2)
    out["stage_cpu_ms"]["list_check"]["strips"] = len(listcheck.bands(clf.reader.spec.roi))
    # the list check where it runs live: on a banner's frame (the demo clip's banner: a score line and more under it)
    banner_ms: list[float] = []
    banner_strips: list[int] = []
    for data, w, h in banners:
        _, image = clf.reader.read_frame(data, w, h)
        c0 = time.thread_time()
        scores = clf.reader.neighbours(image)
        banner_ms.append((time.thread_time() - c0) * 1000.0)
        banner_strips.append(sum(1 for s in scores if s != NO_TEXT))
    out["stage_cpu_ms"]["list_check_on_banner"] = {
        "p50": round(percentile(np.asarray(banner_ms), 50), 3), "p99": round(percentile(np.asarray(banner_ms), 99), 3),
        "strips_read_mean": round(float(np.mean(banner_strips)), 2), "frames": len(banner_ms)}
    # banner episodes: every outcome in every colour, through the real rules
    episodes: list[dict[str, Any]] = []
    banner_cpu: list[float] = []
    for outcome in ("victory", "defeat", "draw"):
        for colour in COLOURS:
            for seed in range(seeds):
                frames_e, start = episode(outcome, colour, seed)
                r = run_sequence(reader, frames_e)
                counted, at = count_episode(r["_preds"])
                steady = r["_cpu"][start:start + 14]
                banner_cpu += steady
                shown = r["_preds"][start:start + 14]
                episodes.append({
                    "outcome": outcome, "colour": colour, "seed": seed, "counted": counted,
                    "frames_to_count": None if at is None else at - start,
                    "full_reads_in_banner": sum(1 for p in shown if "reader" in p.stages
                                                and not p.stages["reader"].get("reused")),
                    "gate_missed_frames": sum(1 for p in shown
                                              if p.stages["gate"]["score"] < p.stages["gate"]["threshold"]),
                })
    # the same episodes as a live channel: cooldown after the count (the phase from the rules)
    live_reads: list[int] = []
    live_cpu: list[float] = []
    live_ok = 0
    for outcome in ("victory", "defeat", "draw"):
        for colour in COLOURS:
            for seed in range(seeds):
                frames_e, start = episode(outcome, colour, seed)
                r = run_episode_live(clf, frames_e)
                live_ok += r["counted"] == [outcome]
                live_cpu += r["_cpu"][start:start + 14]
                live_reads.append(sum(1 for p in r["_preds"][start:start + 14]
                                      if "reader" in p.stages and not p.stages["reader"].get("reused")))
    ok = sum(1 for e in episodes if e["counted"] == [e["outcome"]])
    out["episodes"] = {
        "n": len(episodes), "counted_right": ok,
        "wrong_or_missed": [e for e in episodes if e["counted"] != [e["outcome"]]],
        "frames_to_count_max": max((e["frames_to_count"] for e in episodes if e["frames_to_count"] is not None),
                                   default=None),
        "full_reads_per_3s_banner_max": max(e["full_reads_in_banner"] for e in episodes),
        "full_reads_per_3s_banner_mean": round(float(np.mean([e["full_reads_in_banner"] for e in episodes])), 2),
        "banner_frame_cpu_ms": {"mean": round(float(np.mean(banner_cpu)), 2),
                                "p99": round(percentile(np.asarray(banner_cpu), 99), 2)},
        # as a live channel: after the count the channel is in cooldown (the rules' phase)
        "live": {"counted_right": live_ok, "full_reads_per_3s_banner_max": max(live_reads),
                 "full_reads_per_3s_banner_mean": round(float(np.mean(live_reads)), 2),
                 "banner_frame_cpu_ms": {"mean": round(float(np.mean(live_cpu)), 2),
                                         "p99": round(percentile(np.asarray(live_cpu), 99), 2)}},
    }
    if variants:
        out["schedules_compared"] = compare_schedules(clf, seqs["gameplay_pan"])
    out["targets"] = {"gameplay cpu_ms_mean": "<= 1.5 (incl. schedule reads)", "stage_cpu_ms.gate.p50": "<= 0.5",
                      "banner_frame_cpu_ms.p99": "<= 30", "full reads on a steady banner": "<= 1 per second"}
    return out


# ------------------------------------------------------------------------------------------- margin


def margin(model: Path, n: int = 240, seed: int = 2027) -> dict[str, Any]:
    """Per-letter scores of true banners vs negatives on held-out synthetic frames (every frame read).

    For an outcome frame its own outcome's best word; for a negative the best outcome word of any class
    (and the hard negatives: look-alike words and screens drawn where the banner goes).
    """
    from services.inference.classifier import Classifier
    from training import synth
    from training.synth.samples import render_hard_sample, render_sample

    clf = Classifier(model, intra_op_threads=1, warmup_batch=1)
    assert clf.reader is not None
    banners: dict[str, list[float]] = {"victory": [], "defeat": [], "draw": []}
    entry: list[float] = []
    negatives: list[float] = []  # the best outcome word's raw score on each negative
    evidence: list[float] = []  # ... only where it survives the look-alikes and the list check (``read``)
    for i in range(n):
        data, w, h, info = render_sample(seed, i, synth.EVAL)
        pred = clf.classify([(data, w, h)], read_all=True)[0]
        scores = pred.stages["reader"]["scores"]
        if info["label"] == "none":
            negatives.append(max(scores.values()))
            if pred.read:
                evidence.append(float(scores[pred.read]))
        elif info.get("kind") == "banner":
            banners[info["label"]].append(scores[info["label"]])
        elif info.get("kind") == "entry":
            entry.append(scores[info["label"]])
    hard: list[float] = []
    hard_evidence: list[float] = []
    for i in range(n // 2):
        data, w, h, info = render_hard_sample(seed, i)
        if info["label"] == "none":
            pred = clf.classify([(data, w, h)], read_all=True)[0]
            scores = pred.stages["reader"]["scores"]
            hard.append(max(scores.values()))
            if pred.read:
                hard_evidence.append(float(scores[pred.read]))

    def dist(v: list[float]) -> dict[str, Any]:
        a = np.asarray(v)
        if not a.size:
            return {"n": 0}
        return {"n": int(a.size), "min": round(float(a.min()), 2), "p1": round(percentile(a, 1), 2),
                "p5": round(percentile(a, 5), 2), "p50": round(percentile(a, 50), 2),
                "p95": round(percentile(a, 95), 2), "p99": round(percentile(a, 99), 2),
                "max": round(float(a.max()), 2)}

    spec = clf.reader.spec
    every_banner = [s for v in banners.values() for s in v]
    every_negative = negatives + hard
    with_evidence = evidence + hard_evidence
    return {
        "model": clf.model_id, "accept": spec.accept, "near_miss": spec.near_miss,
        "banners": {k: dist(v) for k, v in banners.items()}, "banners_all": dist(every_banner),
        "entry_frames": dist(entry),
        "negatives_raw": dist(negatives), "hard_negatives_raw": dist(hard),
        "negatives_with_reader_evidence": {"n": len(with_evidence), "of": len(every_negative),
                                           "scores": sorted(round(x, 2) for x in with_evidence)},
        "gap_p5_banner_minus_p99_negative_raw": round(
            percentile(np.asarray(every_banner), 5) - percentile(np.asarray(every_negative), 99), 2),
        "banners_below_accept": sum(1 for s in every_banner if s < spec.accept),
        "banners_below_near_miss": sum(1 for s in every_banner if s < spec.near_miss),
        "note": "mean log-probability per letter, every frame read (read_all); held-out synthetic frames "
                "(render_sample, split EVAL; hard negatives: look-alike words and screens drawn where the banner "
                "goes); raw = the best outcome word before the look-alike and list vetoes; evidence = what a "
                "label carries as `read` after them",
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.detector")
    ap.add_argument("what", choices=("figures", "margin"))
    ap.add_argument("--model", type=Path, default=Path("models/victory_classifier.onnx"))
    ap.add_argument("-n", type=int, default=240, help="margin: frames rendered")
    args = ap.parse_args(argv)
    result = detector_figures(args.model) if args.what == "figures" else margin(args.model, args.n)
    print(json.dumps(result, indent=2, ensure_ascii=False, default=lambda o: None if math.isnan(o) else o))
    return 0


if __name__ == "__main__":
    sys.exit(main())
