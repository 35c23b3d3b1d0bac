"""Banner episodes over the evaluation grid through the real detector and the real counting rules.

``python -m training.episode_eval`` (and ``make eval``, through :func:`run`
with a smaller default) renders one episode per cell of the evaluation grid
(:mod:`training.synth.grid`: every outcome × colour × stroke weight × scene ×
language; :func:`training.synth.episodes.render_grid_episode`: 2.5 s of
gameplay, the banner for 3 s at 250 ms with its entry animation, then 0.5 s)
and runs each like a live channel: the shipped detector with the reader's
schedule and reuse from the model's metadata
(:class:`services.inference.banner.BannerReader`, its phase hint taken from
the episode's own rules, as ``owc scan`` does) and the counting rules with
the default state settings (:func:`services.state.rules.transition`,
``Rules.from_settings(StateSettings())``).

An episode is **counted right** when the rules count exactly one result, its
outcome, after the banner appeared. Reported: recall per outcome, language,
colour, scene, weight and recording (Wilson 95% intervals), wrong outcomes,
the time to count, the per-frame figures of the banner frames, the CPU, and
every miss frame by frame (what the gate said, why the reader ran, what it
read and its per-letter scores) with the stage that dropped it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common.config.sections import StateSettings
from services.inference.banner import BannerReader, Schedule
from services.inference.classifier import Classifier, Prediction
from services.state.rules import Rules
from training import kernels, synth
from training.config import CACHE_DIR, MODEL_PATH
from training.frames import Rendered, load_frames, save_frames
from training.live import LiveChannel
from training.synth.episodes import BANNER, ENTRY, EPISODE_VERSION, FPS, render_grid_episode
from training.synth.grid import CELLS, COLOURS, GRID_VERSION, LANGS, SCENES, WEIGHTS

EPISODE_SEED = 4001  # held-out split, a seed nothing else uses
TARGET = 0.995
OUTCOMES = ("victory", "defeat", "draw")
FACTORS: dict[str, tuple[str, ...]] = {"lang": LANGS, "colour": COLOURS, "scene": SCENES, "weight": WEIGHTS}
MAKE_EVAL_CELLS = 720  # make eval's default: every cell of the grid once (240 episodes per outcome), as the card shows
CHUNK = 48  # episodes per cache file
INTERVAL_MS = 1000 // FPS
MISSES_LISTED = 40  # in the card (all of them in --json)
MISSES_DETAILED = 3


# ---------------------------------------------------------------- which cells, rendering, cache


def pick_cells(n: int) -> list[int]:
    """``n`` cells of the grid spread evenly: all of them from ``len(CELLS)`` on; else about the same number of
    every outcome × colour × language, the weight × scene taken in turn."""
    if n >= len(CELLS):
        return list(range(len(CELLS)))
    index = {cell: i for i, cell in enumerate(CELLS)}
    combos = len(OUTCOMES) * len(COLOURS) * len(LANGS)
    per = -(-n // combos)
    ws = [(w, s) for w in WEIGHTS for s in SCENES]
    out: list[int] = []
    j = 0
    for o in OUTCOMES:
        for c in COLOURS:
            for lang in LANGS:
                for _ in range(per):
                    w, s = ws[j % len(ws)]
                    j += 1
                    out.append(index[(o, c, w, s, lang)])
    return sorted(out[i * len(out) // n] for i in range(n))


def _render(job: tuple[int, int, int, str]) -> list[Rendered]:
    seed, cell, repeat, split_name = job
    with kernels.rendering():
        frames, info = render_grid_episode(seed, cell, repeat, synth.SPLITS[split_name])
    return [Rendered(d, w, h, {**info, "frame": k}) for k, (d, w, h) in enumerate(frames)]


def _chunk_key(seed: int, jobs: Sequence[tuple[int, int]], split: synth.Split) -> str:
    from training.synth.assets import fingerprint_digest

    blob = json.dumps({"gen": synth.GENERATOR_VERSION, "episode": EPISODE_VERSION, "grid": GRID_VERSION,
                       "seed": seed, "jobs": list(jobs), "split": split.name,
                       "natural": synth.natural_available(split), "fonts": synth.fonts_in_use(split),
                       "render": fingerprint_digest(split)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Episode:
    frames: list[Rendered]
    info: dict[str, Any]


def episodes(seed: int, cells: Sequence[int], per_cell: int, split: synth.Split, cache_dir: Path,
             workers: int = 2) -> Iterator[Episode]:
    """The episodes of ``cells`` (``per_cell`` each), rendered or read from ``cache_dir``, in chunks of
    :data:`CHUNK` episodes (one npz each, named by a hash of everything their pixels depend on: the generator's
    code, fonts, photos, libraries, the seed and the cells)."""
    from training.dataset import _progress

    jobs = [(cell, r) for cell in cells for r in range(per_cell)]
    bar = _progress(total=len(jobs), desc="banner episodes", unit="episode")
    for start in range(0, len(jobs), CHUNK):
        part = jobs[start:start + CHUNK]
        path = cache_dir / f"episodes-{split.name}-s{seed}-{start}-n{len(part)}-{_chunk_key(seed, part, split)}.npz"
        frames = load_frames(path)
        if frames is None:
            todo = [(seed, cell, r, split.name) for cell, r in part]
            if workers <= 1 or len(todo) < 4:
                rendered = [_render(job) for job in todo]
            else:
                with mp.get_context("fork").Pool(workers) as pool:
                    rendered = list(pool.imap(_render, todo, chunksize=2))
            frames = [f for ep in rendered for f in ep]
            save_frames(path, frames)
        by: dict[tuple[int, int], list[Rendered]] = {}
        for f in frames:
            by.setdefault((int(f.info["cell"]), int(f.info["repeat"])), []).append(f)
        for cell, r in part:
            ep = sorted(by[(cell, r)], key=lambda f: int(f.info["frame"]))
            info = {k: v for k, v in ep[0].info.items() if k != "frame"}
            bar.update(1)
            yield Episode(ep, info)
    bar.close()


# ---------------------------------------------------------------- one episode through the detector and the rules


def _frame_record(i: int, onset: int, pred: Prediction, cpu_ms: float) -> dict[str, Any]:
    gate = pred.stages.get("gate") or {}
    reader = pred.stages.get("reader")
    rec: dict[str, Any] = {"k": i - onset, "gate": gate.get("score"), "label": pred.label,
                           "conf": round(pred.confidence, 4), "cpu_ms": round(cpu_ms, 2)}
    if isinstance(reader, dict):
        lst = pred.stages.get("list") or {}
        rec.update({
            "why": pred.stages.get("reader_why", ""), "reused": bool(reader.get("reused")),
            "text": str(reader.get("text", ""))[:40],
            "scores": {k: round(float(v), 2) for k, v in (reader.get("scores") or {}).items()},
            "read": pred.read, "near_miss": pred.near_miss or "",
            "list": "deferred" if lst.get("deferred") else "reused" if lst.get("reused") else
                    ("checked" if "scores" in lst else ""),
            "list_scores": [round(float(s), 2) for s in lst.get("scores", [])],
        })
    return rec


@dataclass
class Result:
    info: dict[str, Any]
    counted: list[tuple[str, int]]  # (outcome, frame index) of every count
    frames: list[dict[str, Any]]
    cpu_ms: list[float]
    cause: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return str(self.info["label"])

    @property
    def onset(self) -> int:
        return int(self.info["onset"])

    @property
    def right(self) -> bool:
        return [o for o, _ in self.counted] == [self.outcome] and self.counted[0][1] >= self.onset

    @property
    def wrong(self) -> list[str]:
        return [o for o, _ in self.counted if o != self.outcome]

    @property
    def frames_to_count(self) -> int | None:
        hits = [i for o, i in self.counted if o == self.outcome and i >= self.onset]
        return hits[0] - self.onset if hits else None


def run_episode(clf: Classifier, ep: Episode, rules: Rules, channel: str = "episode",
                schedule: Schedule | None = None) -> Result:
    """One episode as a live channel: the worker's detector (gate, the reader's schedule and reuse from the model's
    metadata unless ``schedule`` is given, its phase hint from this episode's rules) and the rules, frames
    ``INTERVAL_MS`` apart."""
    chan = LiveChannel(clf, rules, schedule, channel=channel, worker="episode")
    onset = int(ep.info["onset"])
    counted: list[tuple[str, int]] = []
    records: list[dict[str, Any]] = []
    cpu: list[float] = []
    for i, f in enumerate(ep.frames):
        step = chan.step(i * INTERVAL_MS, f.data, f.width, f.height)
        cpu.append(step.cpu_ms)
        records.append(_frame_record(i, onset, step.pred, step.cpu_ms))
        counted += [(str(e.outcome), i) for e in step.events if e.type == "detected" and e.outcome is not None]
    result = Result(ep.info, counted, records, cpu)
    if not result.right:
        result.cause, result.notes = diagnose(result, clf)
    return result


def diagnose(r: Result, clf: Classifier) -> tuple[str, dict[str, Any]]:
    """Which stage dropped a missed episode: the gate and the schedule (never read), the reader (read another word
    or too weakly), the list check, or the rules (the evidence was there but not enough)."""
    assert clf.reader is not None
    spec = clf.reader.spec
    banner = r.frames[r.onset:r.onset + BANNER]
    read = [f for f in banner if "scores" in f]
    own = [float(f["scores"].get(r.outcome, -99.0)) for f in read]
    notes: dict[str, Any] = {
        "gate_passed": sum(1 for f in banner if f["gate"] is not None and f["gate"] >= clf.meta.gate.threshold)
        if clf.meta.gate is not None else None,
        "read": len(read), "fresh_reads": sum(1 for f in read if not f.get("reused")),
        "reused_unaccepted": sum(1 for f in read if f.get("reused") and f["label"] != r.outcome),
        "own_scores": [round(s, 2) for s in own],
        "accepted_frames": sum(1 for f in banner if f["label"] == r.outcome),
        "confident_frames": sum(1 for f in banner if f["label"] == r.outcome and f["conf"] >= 0.9),
        "read_as": sorted({f["read"] for f in read if f.get("read")}),
    }
    if r.wrong:
        return f"wrong outcome {', '.join(r.wrong)}", notes
    if r.counted and not r.right:
        return "counted, but not once after the onset", notes
    if not read:
        return "never read: the gate never passed it and the schedule never read it", notes
    vetoed = [f for f in read if any(s >= spec.accept for s in f.get("list_scores", []))]
    if vetoed:
        return f"list check veto: on {len(vetoed)} frame(s)", notes
    best = max(own) if own else -99.0
    others = [max((v for k, v in f["scores"].items() if k != r.outcome), default=-99.0) for f in read]
    if best < spec.near_miss:
        if others and max(others) >= spec.near_miss:
            return f"reader read another word: own best {best:.2f}, other best {max(others):.2f}", notes
        return f"reader too weak: own word best {best:.2f} < near_miss {spec.near_miss}", notes
    if best < spec.accept:
        return f"near misses only: own best {best:.2f} < accept {spec.accept}, the rules' evidence not enough", notes
    return (f"accepted but not counted: on {notes['accepted_frames']} frame(s) ({notes['confident_frames']} "
            "confident), the rules' evidence or streak not enough"), notes


# ---------------------------------------------------------------- the report


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials (95% at z = 1.96); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _cell(rs: Sequence[Result]) -> dict[str, Any]:
    k, n = sum(r.right for r in rs), len(rs)
    lo, hi = wilson(k, n)
    return {"n": n, "right": k, "recall": k / n if n else float("nan"), "ci95": [round(lo, 4), round(hi, 4)],
            "wrong": sum(bool(r.wrong) for r in rs)}


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def report(results: Sequence[Result], clf: Classifier) -> dict[str, Any]:
    by_outcome = {o: [r for r in results if r.outcome == o] for o in OUTCOMES}
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for factor, values in {**FACTORS, "capture": ("plain", "gif", "blocky", "rescaled")}.items():
        by[factor] = {v: {o: _cell([r for r in by_outcome[o] if r.info[factor] == v]) for o in OUTCOMES}
                      | {"all": _cell([r for r in results if r.info[factor] == v])} for v in values}
    to_count = [t for r in results if (t := r.frames_to_count) is not None]
    banner = [f for r in results for f in r.frames[r.onset:r.onset + BANNER]]
    own = [(r.outcome, f) for r in results for f in r.frames[r.onset:r.onset + BANNER]]
    threshold = clf.meta.gate.threshold if clf.meta.gate is not None else 0.5
    lead_cpu = [c for r in results for c in r.cpu_ms[:r.onset]]
    banner_cpu = [c for r in results for c in r.cpu_ms[r.onset:r.onset + BANNER]]
    lead = [f for r in results for f in r.frames[:r.onset]]
    misses = [r for r in results if not r.right]
    return {
        "episodes": len(results),
        "overall": {o: _cell(by_outcome[o]) for o in OUTCOMES} | {"all": _cell(results)},
        "by": by,
        "min_recall": {f: min(c[o]["recall"] for c in by[f].values() for o in OUTCOMES if c[o]["n"])
                       for f in FACTORS},
        "wrong_outcomes": [_miss(r) for r in results if r.wrong],
        "false_counts_before_onset": sum(1 for r in results for _o, i in r.counted if i < r.onset),
        "misses": [_miss(r) for r in misses],
        "causes": _tally(r.cause.split(":")[0] for r in misses),
        "frames_to_count": {"n": len(to_count), "min": min(to_count, default=None),
                            "p50": _pct(to_count, 50), "p95": _pct(to_count, 95), "max": max(to_count, default=None),
                            "histogram": _tally(str(t) for t in sorted(to_count))},
        "per_frame": {
            "banner_frames": len(banner),
            "gate_passed": _share(f["gate"] is not None and f["gate"] >= threshold for f in banner),
            "entry_gate_passed": _share(f["gate"] is not None and f["gate"] >= threshold
                                        for f in banner if f["k"] < len(ENTRY)),
            "read": _share("scores" in f for f in banner),
            "fresh_reads": _share("scores" in f and not f.get("reused") for f in banner),
            "labelled_right_confident": _share(f["label"] == o and f["conf"] >= 0.9 for o, f in own),
            "labelled_wrong": sum(1 for o, f in own if f["label"] not in ("none", o)),
            "gameplay_frames": len(lead),
            "gameplay_read": _share("scores" in f for f in lead),
            "gameplay_labelled_outcome": sum(1 for f in lead if f["label"] != "none"),
        },
        "cpu_ms": {"gameplay_mean": _mean(lead_cpu), "gameplay_p99": _pct(lead_cpu, 99),
                   "banner_mean": _mean(banner_cpu), "banner_p99": _pct(banner_cpu, 99),
                   "total_s": round(sum(c for r in results for c in r.cpu_ms) / 1000.0, 1)},
        "schedule": clf.meta.model_extra.get("schedule") if clf.meta.model_extra else None,
        "model": clf.model_id,
    }


def _share(flags: Iterator[bool] | Sequence[bool]) -> float:
    v = list(flags)
    return round(sum(v) / len(v), 4) if v else float("nan")


def _mean(v: Sequence[float]) -> float:
    return round(float(np.mean(v)), 3) if v else float("nan")


def _tally(items: Iterator[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it] = out.get(it, 0) + 1
    return out


def _miss(r: Result) -> dict[str, Any]:
    cell = "/".join(str(r.info[k]) for k in ("label", "colour", "weight", "scene", "lang"))
    return {"cell": cell, "seed": r.info["seed"], "cell_index": r.info["cell"], "repeat": r.info["repeat"],
            "capture": f"{r.info['capture']} {r.info['width']}x{r.info['height']}", "counted": r.counted,
            "cause": r.cause, "notes": r.notes, "frames": r.frames}


def _frame_line(f: dict[str, Any]) -> str:
    gate = "-" if f["gate"] is None else f"{f['gate']:.3f}"
    if "scores" not in f:
        return f"k={f['k']:+d} gate {gate} not read → {f['label']}"
    scores = " ".join(f"{k[:3]} {v:.2f}" for k, v in f["scores"].items())
    extra = (" reused" if f.get("reused") else "") + (f" list {f['list']}" if f.get("list") else "")
    return (f"k={f['k']:+d} gate {gate} read ({f['why']}{extra}) '{f['text']}' [{scores}] read={f['read'] or '-'} "
            f"→ {f['label']} {f['conf']:.2f}")


def miss_lines(m: dict[str, Any]) -> list[str]:
    """A missed episode, frame by frame from the banner's onset (``k`` = frames from the onset)."""
    head = (f"- `{m['cell']}` (seed {m['seed']}, cell {m['cell_index']}, repeat {m['repeat']}, {m['capture']}): "
            f"{m['cause']}; counted {m['counted'] or 'nothing'}"
            + ("; counted with reuse off" if m.get("counted_without_reuse") else ""))
    frames = [f for f in m["frames"] if f["k"] >= -1]
    return [head, *[f"    - {_frame_line(f)}" for f in frames]]


def miss_summary(m: dict[str, Any]) -> str:
    """A missed episode on one line: the cell, the capture, the cause and its own word's scores."""
    outcome = m["cell"].split("/")[0]
    own = " ".join(f"{f['scores'].get(outcome, -99):.1f}{'r' if f.get('reused') else ''}"
                   for f in m["frames"] if "scores" in f and 0 <= f["k"] < BANNER)
    return (f"- `{m['cell']}` ({m['capture']}, cell {m['cell_index']}): {m['cause']}; own [{own or 'not read'}]"
            + ("; counted with reuse off" if m.get("counted_without_reuse") else ""))


def _ci(c: dict[str, Any]) -> str:
    if not c["n"]:
        return "–"
    lo, hi = c["ci95"]
    return f"{c['right']}/{c['n']} ({lo:.3f}–{hi:.3f})"


def episode_tables(rep: dict[str, Any], command: str) -> list[str]:
    """Markdown for the model card: recall per factor and outcome with Wilson 95% intervals, the misses."""
    o = rep["overall"]
    pf = rep["per_frame"]
    ftc = rep["frames_to_count"]
    cpu = rep["cpu_ms"]
    lines = [
        f"{rep['episodes']} episodes (`{command}`, seed {EPISODE_SEED}, held-out fonts and photos; detector "
        f"`{rep['model']}` with the reader's schedule from its metadata, the counting rules with the default state "
        f"settings). Each: {2.5:g} s of gameplay (a moving camera over the cell's scene, HUD; the streamer's "
        f"overlays on `stream`), the banner for {BANNER * INTERVAL_MS / 1000:g} s at {INTERVAL_MS} ms — its entry "
        "animation first (2 frames: faint and larger, with the streak and the flash; on `end_screen` the dark end "
        "screen cuts in with it) — then 0.5 s; one capture size and recording chain per episode. **Counted right** "
        f"= the rules counted exactly one result, its outcome, after the onset. Target ≥ {TARGET} per outcome, per "
        "language and per colour.",
        "",
        "| episodes counted right (Wilson 95%) | " + " | ".join(OUTCOMES) + " | all |",
        "|---|---|---|---|---|",
        "| **all** | " + " | ".join(f"**{_ci(o[k])}**" for k in OUTCOMES) + f" | {_ci(o['all'])} |",
    ]
    for factor in (*FACTORS, "capture"):
        for v, row in rep["by"][factor].items():
            if row["all"]["n"]:
                lines.append(f"| {factor} {v} | " + " | ".join(_ci(row[k]) for k in OUTCOMES)
                             + f" | {_ci(row['all'])} |")
    lines += [
        "",
        f"- wrong outcomes: **{len(rep['wrong_outcomes'])}**; counts before the banner: "
        f"{rep['false_counts_before_onset']}; missed: {len(rep['misses'])}"
        + (f" ({', '.join(f'{k}: {v}' for k, v in rep['causes'].items())}); of the missed, counted when every "
           f"frame the schedule reads is read afresh (reuse off): {rep.get('misses_counted_without_reuse', '?')}"
           if rep["causes"] else ""),
        f"- time to count (frames from the onset, 0 = the banner's first frame; 250 ms each): min {ftc['min']}, "
        f"median {ftc['p50']:g}, p95 {ftc['p95']:.1f}, max {ftc['max']} — "
        + ", ".join(f"{n} at {k}" for k, n in ftc["histogram"].items()),
        f"- per frame, the {pf['banner_frames']} banner frames: gate passed {pf['gate_passed']:.3f} (entry frames "
        f"{pf['entry_gate_passed']:.3f}); the reader ran on {pf['read']:.3f} ({pf['fresh_reads']:.3f} fresh, the rest "
        f"reused); labelled their outcome at ≥ 0.9 {pf['labelled_right_confident']:.3f}; labelled another outcome "
        f"{pf['labelled_wrong']}. The {pf['gameplay_frames']} gameplay frames before them: read "
        f"{pf['gameplay_read']:.3f}, labelled an outcome {pf['gameplay_labelled_outcome']}.",
        f"- detector CPU per frame (one thread, whole detector with the schedule): gameplay mean "
        f"{cpu['gameplay_mean']:.2f} ms (p99 {cpu['gameplay_p99']:.1f} ms), banner mean {cpu['banner_mean']:.2f} ms "
        f"(p99 {cpu['banner_p99']:.1f} ms); {cpu['total_s']:g} s in all; rendering "
        f"{rep.get('render_cpu_s', 'n/a')} s CPU (cached in `training/cache/` after the first run); load "
        f"{rep.get('load', '?')}.",
    ]
    if rep["misses"]:
        lines += ["", f"Missed episodes (accept {rep.get('accept', '?')}, near miss {rep.get('near_miss', '?')} per "
                  "letter; `own`: the reader's score of the episode's own word on each banner frame it read, `r` = a "
                  "reused reading):", ""]
        lines += [miss_summary(m) for m in rep["misses"][:MISSES_LISTED]]
        if len(rep["misses"]) > MISSES_LISTED:
            lines.append(f"- … {len(rep['misses']) - MISSES_LISTED} more in `--json`")
        lines += ["", "The first of them frame by frame, from one frame before the onset (k = frames from the onset; "
                  "each outcome's best word per letter):", ""]
        for m in rep["misses"][:MISSES_DETAILED]:
            lines += miss_lines(m)
    return lines


def run(model: Path = MODEL_PATH, cells: int = len(CELLS), per_cell: int = 1, seed: int = EPISODE_SEED,
        cache_dir: Path = CACHE_DIR, workers: int = 2, verbose: bool = True,
        only: Collection[int] | None = None) -> dict[str, Any]:
    """Render (or load) the episodes of ``cells`` evenly spread cells and run them; return the report.

    ``only``: run just the episodes of these grid cells (an earlier report's misses, say); the chosen cells'
    episodes are still loaded in the same chunks, so a cached run renders nothing."""
    started = time.monotonic()
    synth.ensure_fonts(synth.EVAL)
    clf = Classifier(model, intra_op_threads=1)
    rules = Rules.from_settings(StateSettings.model_validate({}))
    chosen = pick_cells(cells)
    c0 = time.process_time()
    results: list[Result] = []
    missed: list[Episode] = []
    render_s = 0.0
    it = episodes(seed, chosen, per_cell, synth.EVAL, cache_dir, workers)
    while True:
        t = time.monotonic()
        ep = next(it, None)
        render_s += time.monotonic() - t
        if ep is None:
            break
        if only is not None and int(ep.info["cell"]) not in only:
            continue
        results.append(run_episode(clf, ep, rules))
        if not results[-1].right:
            missed.append(ep)
    rep = report(results, clf)
    # what if every frame the schedule reads were read afresh (no reuse of an earlier reading)?
    fresh = BannerReader(clf).schedule.model_copy(update={"reuse_s": 0.0})
    again = {(m.info["cell"], m.info["repeat"]): run_episode(clf, m, rules, schedule=fresh).right for m in missed}
    for m in rep["misses"]:
        m["counted_without_reuse"] = again[(m["cell_index"], m["repeat"])]
    rep["misses_counted_without_reuse"] = sum(again.values())
    assert clf.reader is not None
    rep.update({"accept": clf.reader.spec.accept, "near_miss": clf.reader.spec.near_miss, "cells": len(chosen),
                "only": sorted(only) if only is not None else None,
                "per_cell": per_cell, "seed": seed, "render_wall_s": round(render_s, 1),
                "render_cpu_s": _children_cpu(), "process_cpu_s": round(time.process_time() - c0, 1),
                "load": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
                "seconds": round(time.monotonic() - started, 1)})
    if verbose:
        o = rep["overall"]
        print("banner episodes (grid, through the rules): " + ", ".join(
            f"{k} {o[k]['right']}/{o[k]['n']}" for k in OUTCOMES) + f"; wrong {len(rep['wrong_outcomes'])}; "
            f"missed {len(rep['misses'])}; {rep['seconds']} s", flush=True)
    return rep


def _children_cpu() -> float:
    t = os.times()
    return round(t.children_user + t.children_system, 1)


def command(cells: int, per_cell: int, only: Collection[int] | None = None) -> str:
    base = ".venv/bin/python -m training.episode_eval"
    return base + ("" if cells >= len(CELLS) else f" --cells {cells}") + ("" if per_cell == 1 else
                                                                          f" --per-cell {per_cell}") + (
        "" if only is None else " --only " + ",".join(str(c) for c in sorted(only)))


def _cell_list(text: str) -> frozenset[int]:
    try:
        cells = frozenset(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of cell numbers: {text!r}") from None
    if not cells or not all(0 <= c < len(CELLS) for c in cells):
        raise argparse.ArgumentTypeError(f"cells are numbered 0 … {len(CELLS) - 1}: {text!r}")
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.episode_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--cells", type=int, default=len(CELLS),
                        help=f"grid cells, spread evenly (default all {len(CELLS)}; 60 = every outcome x colour x "
                        "language once)")
    parser.add_argument("--per-cell", type=int, default=1, help="episodes per cell")
    parser.add_argument("--seed", type=int, default=EPISODE_SEED)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--only", type=_cell_list, default=None,
                        help="run just these grid cells of the chosen ones, comma-separated (e.g. a report's "
                        "misses: its cell_index values)")
    parser.add_argument("--json", type=Path, default=None, help="also write the full report here")
    parser.add_argument("--markdown", action="store_true", help="print the model card's section")
    parser.add_argument("--all-misses", action="store_true", help="print every miss frame by frame")
    args = parser.parse_args(argv)
    if args.cells < 1 or args.per_cell < 1:
        parser.error("--cells and --per-cell must be at least 1")
    if args.only is not None and not set(args.only) <= set(pick_cells(args.cells)):
        parser.error(f"--only names cells outside the {args.cells} chosen: "
                     f"{sorted(set(args.only) - set(pick_cells(args.cells)))}")
    rep = run(args.model, args.cells, args.per_cell, args.seed, args.cache_dir, args.workers, only=args.only)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1, default=str))
    summary = {k: rep[k] for k in ("episodes", "overall", "min_recall", "causes", "frames_to_count", "per_frame",
                                   "cpu_ms", "render_cpu_s", "process_cpu_s", "load", "seconds")}
    summary["wrong_outcomes"] = len(rep["wrong_outcomes"])
    print(json.dumps(summary, indent=1, default=str))
    if args.markdown or rep["misses"]:
        print("\n".join(episode_tables(rep, command(args.cells, args.per_cell, args.only))))
    if args.all_misses:
        for m in rep["misses"]:
            print("\n".join(miss_lines(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
