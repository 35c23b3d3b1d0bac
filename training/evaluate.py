"""Evaluate the shipped detector and write ``models/MODEL_CARD.md``: ``python -m training.evaluate``.

Needs no torch. (a) held-out synthetic frames (fonts, photos, a background
family and a seed training never used), per class and per language, for the
gate alone (1 - p(none) of the CNN, straight from its ONNX file) and for the
whole detector through its public API (``Classifier.classify``: the gate alone
today, gate + reader once the reader stage is in the model metadata); (b) a
long false-positive run: ``--hours`` of ``none`` frames at 4 fps through the
detector and the real counting rules (:mod:`training.fp_run`); banner
episodes over the evaluation grid through the reader's schedule and the
rules (:mod:`training.episode_eval`, ``--episode-cells``); (c) real
samples in ``data/samples/<label>/``; plus the demo clip, size and latency.
The defaults are the card's settings (:data:`FULL`): ``make eval`` rewrites
the whole card, every section, and the card says how to reproduce it;
``--quick`` (:data:`QUICK`, ``make eval-quick``) is a smaller run written to
``artifacts/MODEL_CARD.quick.md``. Hand-written notes come from
``models/MODEL_CARD.notes.md`` (:mod:`training.card`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.inference.classifier import Classifier
from services.inference.vision import MODEL_LABELS, ModelMeta, meta_path_for
from training import dataset, episode_eval, fingerprint, heldout, synth
from training.card import load_notes, merge_notes
from training.config import (
    CACHE_DIR,
    CARD_PATH,
    EVAL_COMMAND,
    EVAL_COUNT,
    EVAL_SEED,
    MODEL_PATH,
    PROJECT_ROOT,
    SAMPLES_DIR,
)
from training.fp_run import FP_HOURS, FP_POOL, FP_SEED, FP_SIZE, FpResult, fp_run, fp_run_live
from training.frames import Detector, Gate, GateScorer, Rendered, cached_render, detect, is_gate_only, reader_meta
from training.grid_eval import GRID_PER_CELL, GRID_SEED, gameplay_cost, grid_report, grid_tables
from training.margin import margin, margin_lines
from training.scan_eval import run as scan_recordings
from training.synth.assets import render_fingerprint
from training.synth.grid import CELLS

MIN_CONFIDENCE = heldout.MIN_CONFIDENCE
TARGET_ACCURACY = 0.995
TARGET_MS = 0.5
TARGET_BYTES = 1_000_000
GATE_THRESHOLDS = heldout.THRESHOLDS

# The card's settings (``make eval``) and the quick variant (``make eval-quick``); a flag given overrides either.
FULL: dict[str, float] = {"eval_count": EVAL_COUNT, "hours": FP_HOURS, "pool": FP_POOL, "grid": GRID_PER_CELL,
                          "grid_cells": len(CELLS), "episode_cells": episode_eval.MAKE_EVAL_CELLS}
QUICK: dict[str, float] = {"eval_count": 300, "hours": 0.2, "pool": 200, "grid": 1, "grid_cells": 72,
                           "episode_cells": 60}
QUICK_CARD = PROJECT_ROOT / "artifacts" / "MODEL_CARD.quick.md"
NOTES_NAME = "MODEL_CARD.notes.md"


def eval_command(settings: dict[str, float]) -> str:
    """The command that evaluates with ``settings``, every setting spelt out."""
    return (f"{EVAL_COMMAND} --eval-count {settings['eval_count']:g} --hours {settings['hours']:g} --pool "
            f"{settings['pool']:g} --grid {settings['grid']:g} --grid-cells {settings['grid_cells']:g} "
            f"--episode-cells {settings['episode_cells']:g}")


def _count(n: int, noun: str) -> str:
    """``1 false count``, ``2 false counts``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def latency_ms(model_path: Path, meta: ModelMeta, runs: int = 2000) -> dict[str, float]:
    """The gate CNN's latency on one onnxruntime thread, batch 1 (the worker's case)."""
    gate = Gate(model_path, threads=1)
    sess, name = gate.session, gate.input_name
    x = np.random.default_rng(0).standard_normal((1, 3, meta.input.height, meta.input.width)).astype(np.float32)
    for _ in range(50):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    arr = np.asarray(times) * 1000
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)), "mean": float(arr.mean())}


def demo_clip_check(det: Detector, gate: GateScorer) -> dict[str, Any]:
    from training import demo_clip

    frames = [(d, demo_clip.WIDTH, demo_clip.HEIGHT) for d in demo_clip.render_frames()]
    preds = detect(det, frames)
    scores = gate.scores(frames)
    banner = [i for i in range(len(frames)) if demo_clip.frame_label(i) == "victory"]
    steady = [i for i in banner if i >= demo_clip.BANNER_START + demo_clip.ENTRY_FRAMES]
    gameplay = [i for i in range(len(frames)) if demo_clip.frame_label(i) == "none"]

    def victory(i: int) -> float:
        return preds[i].probs.get("victory", 0.0) if preds[i].label == "victory" else 0.0

    return {
        "frames": len(frames),
        "banner_frames": len(banner),
        "steady_banner_min_victory_conf": min(victory(i) for i in steady),
        "banner_min_gate": float(scores[banner].min()),
        "gameplay_predicted_none": sum(preds[i].label == "none" for i in gameplay),
        "gameplay_frames": len(gameplay),
        "gameplay_max_gate": float(scores[gameplay].max()),
    }


def real_samples(root: Path, det: Detector, gate: GateScorer) -> dict[str, Any] | None:
    """Every real sample under ``root/<label>/`` through the detector and the gate."""
    files = dataset.real_sample_files(root)
    rows: list[dict[str, Any]] = []
    for label, paths in files.items():
        for p in paths:
            import cv2

            data = p.read_bytes()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                continue
            h, w = img.shape[:2]
            frame = (data, int(w), int(h))
            pred = det.classify([frame])[0]
            rows.append({"file": f"{label}/{p.name}", "label": label, "held_out": dataset._is_eval_sample(p),
                         "pred": pred.label, "confidence": pred.confidence,
                         "gate": float(gate.scores([frame])[0]), "size": f"{w}x{h}"})
    if not rows:
        return None
    out: dict[str, Any] = {"count": len(rows), "rows": rows, "per_label": {}}
    for label in MODEL_LABELS:
        mine = [r for r in rows if r["label"] == label]
        if not mine:
            continue
        out["per_label"][label] = {
            "n": len(mine),
            "held_out": sum(r["held_out"] for r in mine),
            "detector": sum(r["pred"] == label for r in mine) / len(mine),
            "detector_held_out": (sum(r["pred"] == label for r in mine if r["held_out"])
                                  / max(1, sum(r["held_out"] for r in mine))),
            **{f"gate_{t:g}": sum((r["gate"] >= t) == (label != "none") for r in mine) / len(mine)
               for t in GATE_THRESHOLDS},
        }
    out["errors"] = [r for r in rows if r["pred"] != r["label"]][:30]
    return out


# ---------------------------------------------------------------- the card


def _f(v: float, digits: int = 4) -> str:
    return "n/a" if v != v else f"{v:.{digits}f}"


def _outcome_table(rows: dict[str, dict[str, Any]], first: str, ts: Sequence[float]) -> list[str]:
    head = (f"| {first} | n | " + " | ".join(f"gate ≥ {t:g}" for t in ts) + " | detector right | detector right, "
            f"conf ≥ {MIN_CONFIDENCE} | wrong outcome |")
    lines = [head, "|---|---|" + "---|" * len(ts) + "---|---|---|"]
    for k, r in rows.items():
        lines.append(f"| {k} | {r['n']} | " + " | ".join(_f(r[f"gate_{t:g}"]) for t in ts)
                     + f" | {_f(r['detector'])} | {_f(r['detector_confident'])} | {r['wrong_outcome']} |")
    return lines


def _none_table(rows: dict[str, dict[str, Any]], ts: Sequence[float]) -> list[str]:
    lines = ["| none kind | n | " + " | ".join(f"candidates: gate ≥ {t:g}" for t in ts)
             + f" | detector says an outcome | … with conf ≥ {MIN_CONFIDENCE} |",
             "|---|---|" + "---|" * len(ts) + "---|---|"]
    for k, r in rows.items():
        lines.append(f"| {k} | {r['n']} | " + " | ".join(_f(r[f"gate_{t:g}"]) for t in ts)
                     + f" | {r['detector_outcome']} | {r['detector_confident_outcome']} |")
    return lines


def _margin_section(m: dict[str, Any] | None) -> list[str]:
    if m is None:
        return []
    return [
        "### The reader's margin",
        "",
        "Where the reader puts the same held-out frames on its scale (mean log-probability per letter of a word; "
        "`training/margin.py`): an outcome frame's **own** word, and a `none` frame's **best** outcome word, on "
        "every frame the reader read (a frame the gate did not pass is not read):",
        "",
        *margin_lines(m),
        "",
    ]


def gate_threshold(clf: Classifier) -> float | None:
    """The gate threshold of a two-stage model's metadata (None for a gate-only model)."""
    gate = getattr(clf.meta, "gate", None) or (clf.meta.model_extra or {}).get("gate")
    t = gate.get("threshold") if isinstance(gate, dict) else getattr(gate, "threshold", None)
    return float(t) if isinstance(t, int | float) else None


def _detector_desc(clf: Classifier) -> str:
    reader = reader_meta(clf)
    if reader:
        get = reader.get if isinstance(reader, dict) else (lambda k: getattr(reader, k, "?"))
        return (f"`{clf.model_id}`: the gate CNN (threshold {gate_threshold(clf)}) then the reader "
                f"`{get('package')}=={get('version')}` on its candidates")
    return f"`{clf.model_id}` (the gate CNN alone: no reader stage in its metadata)"


def _live_lines(live: dict[str, Any] | None) -> list[str]:
    """The card's (b2): the long run's timeline as one live channel (``fp_run --live``)."""
    if not live:
        return ["## (b2) The same run as a live channel", "", "Not run with this card (cards before 2026-12-07).", ""]
    frames = max(1, live["frames"])
    reader = live.get("reader") or {}
    lines = [
        "## (b2) The same run as a live channel",
        "",
        f"**{_count(len(live['false_counts']), 'false count')} in {live['hours']:g} h** "
        f"({_f(live['per_hour'], 2)} per hour; target 0 in ≥ 10 h). The same {live['frames']} frames, in order, "
        "through one `BannerReader` — the worker's detector: the gate, the reader's schedule (settle, every, follow), "
        "reuse of a reading while the banner area holds still, the phase from the rules its own labels feed "
        "(`training.live.LiveChannel`) — as `python -m training.fp_run --live` runs it. (b) reads only the gate's "
        "candidates, each afresh; this is what a live channel does, so it is the run that counts.",
        "",
        f"- frames labelled an outcome (any confidence): {live['outcome_frames']}; with confidence ≥ "
        f"{MIN_CONFIDENCE}: {live['confident_outcome_frames']}",
        f"- frames read afresh: {live['fresh_reads']} ({_f(live['fresh_reads'] / frames)} of the frames); "
        f"readings reused: {reader.get('reused', 'n/a')}; the detector's CPU {live['cpu_ms'] / frames:.2f} ms per "
        "frame (this thread: decoding, gate and any reading)",
        f"- wall time {live['wall_s']:.0f} s (one process: each frame's schedule depends on every frame before it)",
        "",
        "| scene kind | frames | outcome frames | false counts |",
        "|---|---|---|---|",
        *[f"| {k} | {r['frames']} | {r['outcome_frames']} | {r['false_counts']} |" for k, r in live["by_kind"].items()],
        "",
    ]
    if live["false_counts"]:
        lines += ["False counts (the time on the run's timeline; `fp_run --live` prints each one's last frames): "
                  + "; ".join(f"at {c['at_s']:g} s {c['outcome']} {c['confidence']:.3f} ({c['kind']}, scene "
                              f"{c['scene']})" for c in live["false_counts"][:20]), ""]
    return lines


def write_card(path: Path, meta: ModelMeta, report: dict[str, Any],
               notes: dict[str, list[str]] | None = None) -> None:
    """The whole card from one run's ``report``, with the hand-written ``notes`` (:func:`training.card.load_notes`)
    merged in under their sections."""
    training = (meta.model_extra or {}).get("training", {})
    data = training.get("data", {})
    tr = data.get("train", {})
    hard = data.get("hard", {})
    syn = report["synthetic"]
    fp: dict[str, Any] = report["fp"]
    real = report.get("real")
    lat = report["latency_ms"]
    demo = report["demo_clip"]
    ok = report["targets"]
    ts: list[float] = syn["thresholds"]
    lines = [
        "# Model card: victory_classifier",
        "",
        f"- **detector evaluated**: {report['detector']}, through `Classifier.classify` (the public API the "
        "inference worker uses)",
        f"- **gate**: `{Path(report['model']).name}` ({report['size_bytes']} bytes ONNX), a CNN on the ROI x "
        f"{meta.roi.x0}–{meta.roi.x1}, y {meta.roi.y0}–{meta.roi.y1} resized to {meta.input.width}×"
        f"{meta.input.height}, classes {', '.join(f'`{lab}`' for lab in MODEL_LABELS)}; **gate score = 1 − "
        "p(none)**, tuned for recall: a frame at or above the gate threshold is a candidate for the reader"
        + (f" (threshold in the metadata: **{report['gate_threshold']:g}**)" if report.get("gate_threshold")
           is not None else ""),
        f"- **architecture**: {training.get('arch', '?')} ({training.get('params', '?')} parameters)",
        f"- **trained with**: `{training.get('command', '?')}` — {training.get('framework', '?')}; "
        f"{training.get('epochs_run', '?')} epochs ({training.get('checkpoint', '?')}), "
        f"{training.get('class_balance', '')}",
        f"- **reproduce with**: `{report['reproduce']}` ("
        + (f"= `{report['command']}`; " if report["reproduce"] != report["command"] else "")
        + f"{report['eval_seconds']:.0f} s wall on the shared 2-core machine, load {report['load_end']} at the end). "
        "Every figure below but the times (ms, s, frames/s) and the load comes out the same on every run and on a "
        "fresh clone: `python -m training.card diff A.md B.md` compares two cards without them; the frames are "
        "pinned, the detector's kernels are the CPU's own: `python -m training.fingerprint` compares this machine's "
        "outputs on 19 pinned frames with the card's machine's (`models/victory_classifier.fingerprint.json`, "
        "written with this card). `make eval-quick` "
        f"(`{eval_command(QUICK)}`) is a quick variant, written to `artifacts/MODEL_CARD.quick.md`",
        f"- **rendered with**: generator code {report['render']['code']}, "
        + ", ".join(f"{k} {v}" for k, v in report["render"]["libraries"].items())
        + f"; font and photo files {_assets_digest(report['render']['assets'])} (a digest of every file's sha256, "
        "each in `--json`'s `render`: another font or photo found on this system shows here; a cache of frames "
        "is only reused when all of these match)",
        "",
        "## What the gate was trained on",
        "",
        f"**Synthetic frames only**{' plus real samples' if data.get('real_samples_train') else ''}: "
        f"{tr.get('count', '?')} frames from `training/synth/` ({data.get('synthetic_generator', '?')}, seed "
        f"{tr.get('seed', '?')})"
        + (f" plus {hard['count']} hard examples ({hard.get('generator', '?')}, seed {hard.get('seed', '?')}: "
           "DEFEND/ATTACK/DEFEATED and other texts drawn exactly like the banner, career/OW1/kill-feed screens; "
           "thin, faint and degraded banners)" if hard.get("count") else "")
        + f", class counts {data.get('class_counts', {})}; {data.get('real_samples_train', 0)} real samples.",
        "Every frame is a full 16:9 capture (480×270 to 1920×1080, 640×360 most often), JPEG q55–95, fed "
        "through `services.inference.vision.preprocess_bytes` like the inference worker.",
        "- **Banners**: `VICTORY!`, `DEFEAT`, `DRAW`, Japanese `勝利！` / `敗北` / `引き分け`, **in any colour**: "
        "35% in the colour the game is known to use (gold VICTORY!, red DEFEAT, red — as in the first real DRAW "
        "— white or silver DRAW), the rest in any of red, gold, white, silver, blue, cyan, green, purple, "
        "orange, pink; the gate's first layer keeps only each pixel's brightest and darkest channel, so it "
        "cannot key on hue anyway. Condensed capitals from thin to black weights (about half drawn with "
        "thinned strokes), upright fonts sheared strongly (0.15–0.42), flat fill with a faint lighter edge, "
        "glow only sometimes, a dark outline rarely; 20% on the **dark end screen** (near-black, a blue glow "
        "left and a red glow right most often) with the large white `3 | 3` and `FINAL SCORE` under the word, "
        "the rest on bright busy daylight scenes, procedural scenes and photos with **nothing darkening the "
        "scene behind the text** (a scene the text would vanish in is drawn again or hue-rotated, never "
        "shaded); the entry streak and flash (20%), occluders (10%), the Tab scoreboard over the banner (10% "
        "readable `tab_banner`, 4% mostly hidden `tab_hidden`: both keep the outcome label so the gate passes "
        "them on to the reader, which may say `none`).",
        "- **Streamers' overlays** (25% of the frames of every class, program-scene captures): a webcam box "
        "(most often at the right edge) with the streamer's own W/L/D counter, chat lines at the left, a "
        "player/info bar, follower/subscriber alerts.",
        "- **Recordings**: 13% GIF-like (64–256 colour palette, Floyd–Steinberg dithering mostly), 15% "
        "stream blocking (JPEG q5–30, 8×8 or 16×16 blocks), 12% small recordings (480×270–800×450) scaled "
        "up; then brightness/contrast jitter, blur, noise, recompression.",
        "- **`none`**: gameplay with HUD, other big texts in banner colours and fonts (`DEFEND`, `ATTACK`, "
        "`DEFEATED`, `VICTORIES`, `OVERTIME`, round/objective announcements, Japanese ones), kill feeds with "
        "DEFEATED/VICTORIES and elimination callouts, kill-streak callouts, banner colours/streaks/flashes "
        "without text, outcome words elsewhere or tiny, cut banners, the Tab scoreboard, career match "
        "history (VICTORY/DEFEAT at medium size in rows across the ROI), the POTG intro, menus, Overwatch 1 "
        "end screens (small VICTORY top-left), the dark end screen with its score lines but no word.",
        f"Fonts: {', '.join(tr.get('fonts', []))}. Backgrounds: {tr.get('background_families', [])} and "
        f"scikit-image photos {tr.get('natural_backgrounds', [])}.",
        "",
        "## (a) Held-out synthetic frames",
        "",
        f"{syn['count']} frames, seed {EVAL_SEED}, generator v{synth.GENERATOR_VERSION}: **fonts and photos "
        f"never used in training** ({', '.join(synth.fonts_in_use(synth.EVAL))}; photos "
        f"{synth.natural_available(synth.EVAL)}; plus the `mosaic` background family). The procedural "
        "scene families and the drawing code are shared with training (new random draws): this measures "
        "generalisation within the synthetic world, not to the real game.",
        "",
        f"Detector accuracy **{_f(syn['accuracy'])}**; per class "
        + ", ".join(f"{k} {_f(v)}" for k, v in syn["per_class"].items())
        + f" (target ≥ {TARGET_ACCURACY} each; `tab_hidden` frames count as right when `none`).",
        "",
        "Outcome frames by class and language (gate columns: share of frames with 1 − p(none) ≥ threshold):",
        "",
        *_outcome_table(syn["outcomes"], "class / language", ts),
        "",
        "By kind of outcome frame:",
        "",
        *_outcome_table(syn["outcome_kinds"], "kind", ts),
        "",
        "By recording:",
        "",
        *_outcome_table(syn["outcome_captures"], "recording", ts),
        "",
        "`none` frames — the gate's **candidate rate** (each candidate costs one reader run, ~10 ms): "
        + ", ".join(f"{_f(syn['none'][f'gate_{t:g}'])} at ≥ {t:g}" for t in ts)
        + " (these held-out `none` frames are mostly hard negatives; gameplay alone is the `gameplay` row):",
        "",
        *_none_table(syn["none_kinds"], ts),
        "",
        *_margin_section(report.get("margin")),
        "## (a2) Every outcome in every colour: the evaluation grid",
        "",
        *grid_tables(report["grid"]),
        "",
        "### Gameplay: candidate rate and CPU",
        "",
        f"On the {report['gameplay']['frames']} held-out `gameplay` frames the gate makes a candidate of "
        f"**{_f(report['gameplay']['candidate_rate'])}** of them (threshold {report['grid']['threshold']:g}); the "
        f"whole detector (JPEG decode, gate, the reader on candidates) costs **{report['gameplay']['cpu_ms_mean']:.2f} "
        f"ms of CPU per frame** on average (p50 {report['gameplay']['cpu_ms_p50']:.2f} ms, p99 "
        f"{report['gameplay']['cpu_ms_p99']:.2f} ms; one frame per call, one onnxruntime thread, load "
        f"{report['load']}).",
        "",
        "## (a3) Banner episodes through the counting rules",
        "",
        *episode_eval.episode_tables(report["episodes"], report["episodes_command"]),
        "",
        *_recordings_lines(report["recordings"]),
        "",
        "## (b) Long false-positive run",
        "",
        f"**{_count(len(fp['false_counts']), 'false count')} in {fp['hours']:g} h** ({_f(fp['per_hour'], 2)} per hour; "
        f"target 0 in ≥ 10 h) — {fp['frames']} `none` frames at 4 fps through the detector and "
        "`services.state.rules.transition` with the default state settings (min_confidence 0.9, 2 "
        "consecutive frames, 180 s cooldown, 50 `none` frames to re-arm), in capture-time order 250 ms apart.",
        "",
        f"How: rendering {fp['frames']} distinct frames is too slow, so a pool of **{fp['pool']} distinct "
        f"`none` scenes** (held-out split, seed {FP_SEED}, 640×360 — the capture's default size — with the "
        "generator's share of gameplay and every hard negative: other big texts, kill feeds and callouts, "
        "Tab scoreboards, career history, POTG intros, menus, Overwatch 1 end screens, banner colours, cut "
        "banners, GIF/blocky/small recordings) is rendered once and cached in `training/cache/`; the "
        f"timeline holds a random scene for a random 2–8 s ({fp['segments']} holds, so each scene appears "
        "several times), and every frame of a hold gets its own cheap jitter: a shift of up to ±3 px, "
        "brightness/contrast ±7%, a JPEG re-encode at q60–92. Consecutive frames are therefore far more "
        "alike than two frames of real gameplay, and 10 h here means ~7,000 scene holds, not 10 h of "
        "different footage.",
        "",
        f"- frames labelled an outcome (any confidence): {fp['outcome_frames']}; with confidence ≥ "
        f"{MIN_CONFIDENCE}: {fp['confident_outcome_frames']}",
        "- gate candidate rate over the run: " + ", ".join(f"{_f(v)} at ≥ {k}" for k, v in fp["gate_rate"].items()),
        f"- wall time {fp['wall_s']:.0f} s ({fp['frames'] / max(fp['wall_s'], 1e-9):.0f} frames/s including "
        "the jitter and two processes)",
        "",
        "| scene kind | frames | outcome frames | gate ≥ 0.2 | false counts |",
        "|---|---|---|---|---|",
        *[f"| {k} | {r['frames']} | {r['outcome_frames']} | {_f(r.get('gate_0.2', float('nan')))} | "
          f"{r['false_counts']} |" for k, r in fp["by_kind"].items()],
        "",
    ]
    if fp["false_counts"]:
        lines += ["False counts (first 20; the time on the run's timeline): " + "; ".join(
            f"at {c['at_s']:g} s {c['outcome']} {c['confidence']:.3f} ({c['kind']}, scene {c['scene']})"
            for c in fp["false_counts"][:20]), ""]
    lines += _live_lines(report.get("fp_live"))
    lines += ["## (c) Real footage", ""]
    if real:
        lines += [
            f"{real['count']} real frames from `data/samples/` through the same detector; the gate was trained on "
            "the 80% of them not marked held-out (by file name), the reader on none of them.",
            "",
            "| label | n | held out | detector right | … held-out only | gate right ≥ 0.1 | ≥ 0.2 | ≥ 0.3 |",
            "|---|---|---|---|---|---|---|---|",
            *[f"| {k} | {r['n']} | {r['held_out']} | {_f(r['detector'])} | {_f(r['detector_held_out'])} | "
              f"{_f(r['gate_0.1'])} | {_f(r['gate_0.2'])} | {_f(r['gate_0.3'])} |"
              for k, r in real["per_label"].items()],
            "",
        ]
        if real["errors"]:
            lines += ["Wrong: " + "; ".join(f"{e['file']} → {e['pred']} ({e['confidence']:.2f}, gate "
                                            f"{e['gate']:.2f})" for e in real["errors"]), ""]
    else:
        lines += [
            "**No real samples were present in `data/samples/` when this card was written.** The real frames "
            "the design was measured on (12 real DEFEAT frames of an 800×450 recording, a 1080p VICTORY!, 40 "
            "real non-banner frames) are kept outside the repo. Use `owc collect` (see `docs/training.md`) to "
            "gather your own, then `make eval`.",
            "",
        ]
    lines += [
        "## Demo clip",
        "",
        f"`training/demo_clip.py` ({demo['frames']} frames at 640×360): steady banner frames min victory "
        f"confidence {demo['steady_banner_min_victory_conf']:.4f}, min gate score over all {demo['banner_frames']} "
        f"banner frames {demo['banner_min_gate']:.4f}; gameplay frames predicted `none`: "
        f"{demo['gameplay_predicted_none']}/{demo['gameplay_frames']}, max gate score {demo['gameplay_max_gate']:.4f}.",
        "",
        "## Cost",
        "",
        f"- gate size: {report['size_bytes']} bytes (target ≤ {TARGET_BYTES})",
        f"- gate latency, one onnxruntime thread, batch 1: p50 {lat['p50']:.3f} ms, p95 {lat['p95']:.3f} ms "
        f"(target ≤ {TARGET_MS} ms); preprocessing (JPEG decode, crop, resize) not included. Measured on a "
        "shared 2-core machine.",
    ]
    if report.get("train_seconds"):
        secs = training.get("seconds", {})
        lines.append(f"- `make train` wall time before this evaluation: {report['train_seconds']} s (data "
                     f"{secs.get('data', '?')} s — generated, or loaded from `training/cache/` — training "
                     f"{secs.get('fit', '?')} s, export) on the shared 2-core machine")
    lines += [
        "",
        "## Never tested on",
        "",
        "- **The real game, here**: unless section (c) lists real samples, nothing in this card comes from "
        "real footage. The real font (the game's own condensed oblique), its exact effects and animation timing "
        "are approximated, not reproduced.",
        "- Real hours of gameplay: the false-positive run is synthetic scenes with jitter (see (b)); real maps, "
        "heroes' abilities, sprays, highlights, replays, spectator and custom-game screens, seasonal events "
        "are not in it.",
        "- A real Japanese client (the Japanese banners are Noto CJK renderings, the real layout is a guess), "
        "and every other client language (Korean, Chinese, European languages): untested, expected to fail "
        "for words the generator never draws.",
        "- Colour-blind filters, HDR captures, non-16:9 aspect ratios (need a ROI override), streamer "
        "overlays or webcams over the banner area beyond small occluders, 4K captures, real H.264 "
        "artefacts (simulated by JPEG blocking), real GIF encoders (simulated by PIL quantisation).",
        "- The Tab scoreboard's real layout, and how much of a real banner shows through it.",
        "",
        f"Targets: {'all met' if all(ok.values()) else 'NOT all met'} — {ok}",
        "",
        f"timing target (gate latency p50 ≤ {TARGET_MS} ms): {'met' if report['latency_met'] else 'missed'}",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(merge_notes(lines, notes or {})), encoding="utf-8")


def _assets_digest(assets: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(assets, sort_keys=True).encode()).hexdigest()[:16]


def _recordings_lines(rec: dict[str, Any]) -> list[str]:
    """The recordings step: generated evenings scanned like ``owc scan`` (a subsection of (a3))."""
    return [
        "### Recordings through `owc scan`",
        "",
        f"{rec['clips']} recordings (generated evenings, `training/scan_eval.py`: folders of frames and one mp4, "
        "every outcome, through `services.scan.scanner.Scanner` with the shipped detector and the rules, "
        "cooldown shortened to the clips' 15 s matches): banners counted with their outcome "
        + ", ".join(f"{k} {rec['counted'][k]}/{rec['banners'][k]}" for k in rec["banners"])
        + f"; other counts {len(rec['other_counts'])}"
        + (": " + "; ".join(rec["other_counts"][:10]) if rec["other_counts"] else "")
        + f"; {rec['frames']} frames at {rec['frames_per_second']:g} frames/s.",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--quick", action="store_true", help=f"the quick variant: `{eval_command(QUICK)}`, the "
                        "card written to artifacts/MODEL_CARD.quick.md unless --card")
    parser.add_argument("--eval-count", type=int, default=None, help=f"held-out frames (card: {EVAL_COUNT})")
    parser.add_argument("--hours", type=float, default=None,
                        help=f"length of the false-positive run (card: {FP_HOURS:g})")
    parser.add_argument("--pool", type=int, default=None,
                        help=f"distinct none scenes of the false-positive run (card: {FP_POOL})")
    parser.add_argument("--grid", type=int, default=None,
                        help=f"banners per cell of the evaluation grid (card: {GRID_PER_CELL})")
    parser.add_argument("--grid-cells", type=int, default=None, help="cells of the evaluation grid, spread over "
                        f"every factor (card: all {len(CELLS)})")
    parser.add_argument("--episode-cells", type=int, default=None,
                        help="banner episodes through the rules: grid cells, spread evenly (one episode each; "
                        f"card: all {len(CELLS)}, `python -m training.episode_eval`)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--samples", type=Path, default=SAMPLES_DIR)
    parser.add_argument("--card", type=Path, default=None, help="default: MODEL_CARD.md beside the model (with the "
                        "card's settings), else artifacts/MODEL_CARD.quick.md")
    parser.add_argument("--notes", type=Path, default=None, help=f"hand-written notes merged into the card "
                        f"(default: {NOTES_NAME} beside the model)")
    parser.add_argument("--json", type=Path, default=None, help="also write the full report here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--train-seconds", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    settings = {k: float(v if (v := getattr(args, k)) is not None else preset[k]) for k in FULL}
    if min(settings.values()) <= 0:
        parser.error("every count and --hours must be positive")
    args.eval_count, args.pool, args.grid = int(settings["eval_count"]), int(settings["pool"]), int(settings["grid"])
    args.hours = settings["hours"]
    args.grid_cells = min(len(CELLS), int(settings["grid_cells"]))
    args.episode_cells = min(len(CELLS), int(settings["episode_cells"]))
    settings.update(grid_cells=args.grid_cells, episode_cells=args.episode_cells)
    full = settings == {k: float(v) for k, v in FULL.items()}
    notes = load_notes(args.notes or args.model.parent / NOTES_NAME)  # a bad notes file fails before the run
    started = time.monotonic()
    meta = ModelMeta.load(meta_path_for(args.model))
    synth.ensure_fonts(synth.EVAL)
    clf = Classifier(args.model)
    gate = Gate(args.model)

    held = cached_render(EVAL_SEED, args.eval_count, synth.EVAL, args.cache_dir, desc="held-out frames")
    frames = [f.frame for f in held]
    ts = list(GATE_THRESHOLDS)
    threshold = gate_threshold(clf)
    if threshold is not None and threshold not in ts:
        ts = sorted([*ts, threshold])
    report: dict[str, Any] = {
        "model": str(args.model),
        "detector": _detector_desc(clf),
        "gate_threshold": threshold,
    }
    held_preds = detect(clf, frames)
    report["synthetic"] = heldout.report(held, gate.scores(frames), held_preds, ts)
    if clf.reader is not None:
        report["margin"] = margin([str(f.info["label"]) for f in held], held_preds, clf.reader.spec.accept,
                                  clf.reader.spec.near_miss)
    cells = args.grid_cells
    grid_frames = cached_render(GRID_SEED, cells * args.grid, synth.EVAL, args.cache_dir,
                                desc="evaluation grid", grid=args.grid)
    gframes = [f.frame for f in grid_frames]
    cut = threshold if threshold is not None else 0.5
    report["grid"] = grid_report(grid_frames, gate.scores(gframes), detect(clf, gframes), cut)
    play = [f.frame for f in held if f.info.get("kind") == "gameplay"]
    report["gameplay"] = gameplay_cost(clf, play, gate.scores(play), cut)
    # banner episodes (entry animation, 3 s at 250 ms) through the schedule and the real counting rules
    report["episodes"] = episode_eval.run(args.model, cells=args.episode_cells, cache_dir=args.cache_dir,
                                          workers=args.workers)
    report["episodes_command"] = episode_eval.command(args.episode_cells, 1)
    report["load"] = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    report["render"] = render_fingerprint(synth.EVAL)
    pool: list[Rendered] = cached_render(FP_SEED, args.pool, synth.EVAL, args.cache_dir, label="none",
                                         size=FP_SIZE, desc="false-positive scene pool")
    model = args.model

    gate_only = is_gate_only(clf)

    def factory() -> tuple[Detector, GateScorer | None]:
        # a gate-only detector's own probabilities are the gate's: no second pass needed
        return Classifier(model), None if gate_only else Gate(model)

    fp: FpResult = fp_run(pool, args.hours, factory, workers=args.workers, thresholds=ts)
    report["fp"] = {**fp.__dict__, "per_hour": fp.per_hour}
    # the same timeline as one live channel: the reader's schedule, reuse and phase, as the worker runs it
    live: FpResult = fp_run_live(pool, args.hours, clf, thresholds=ts)
    report["fp_live"] = {**live.__dict__, "per_hour": live.per_hour}
    report["real"] = real_samples(args.samples, clf, gate)
    report["demo_clip"] = demo_clip_check(clf, gate)
    report["recordings"] = scan_recordings(args.model)  # owc scan on generated clips: recall per outcome
    report["latency_ms"] = latency_ms(args.model, meta)
    report["size_bytes"] = args.model.stat().st_size
    report["train_seconds"] = args.train_seconds
    report["command"] = eval_command(settings)
    report["settings"] = settings
    report["reproduce"] = "make eval" if full and args.model == MODEL_PATH else report["command"] + (
        f" --model {args.model}" if args.model != MODEL_PATH else "")
    syn = report["synthetic"]
    report["targets"] = {
        "held_out_per_class": all(v >= TARGET_ACCURACY for v in syn["per_class"].values()),
        "no_confident_false_outcome": syn["none"]["detector_confident_outcome"] == 0,
        "fp_zero_in_10h": fp.hours >= 10 and not fp.false_counts and not live.false_counts,
        "size": report["size_bytes"] <= TARGET_BYTES,
        "episodes_per_outcome_language_colour": min(
            [r["recall"] for r in report["episodes"]["overall"].values()]
            + list(report["episodes"]["min_recall"].values())) >= episode_eval.TARGET,
        "demo_clip": report["demo_clip"]["steady_banner_min_victory_conf"] >= MIN_CONFIDENCE
        and report["demo_clip"]["gameplay_predicted_none"] == report["demo_clip"]["gameplay_frames"],
    }
    report["latency_met"] = report["latency_ms"]["p50"] <= TARGET_MS  # timing: apart from the targets above
    report["eval_seconds"] = time.monotonic() - started
    report["load_end"] = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    card = args.card or (args.model.parent / "MODEL_CARD.md" if full else QUICK_CARD)
    write_card(card, meta, report, notes)
    if card == CARD_PATH:  # the shipped detector's card: its machine's outputs go with it
        fingerprint.record(fingerprint.REFERENCE, args.model)
        print(f"wrote {fingerprint.REFERENCE}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    summary = {k: report[k] for k in ("detector", "targets", "eval_seconds")}
    summary["per_class"] = syn["per_class"]
    summary["fp"] = {k: report["fp"][k] for k in ("hours", "frames", "per_hour", "outcome_frames", "gate_rate")}
    summary["none_candidates"] = {k: syn["none"][k] for k in ("gate_0.1", "gate_0.2", "gate_0.3")}
    summary["false_counts"] = len(fp.false_counts)
    summary["false_counts_live"] = len(live.false_counts)
    summary["grid"] = {"overall": report["grid"]["overall"], "min_gate_colour_outcome":
                       report["grid"]["min_gate_colour_outcome"], "missed": report["grid"]["missed_count"]}
    summary["gameplay"] = report["gameplay"]
    summary["episodes"] = {k: report["episodes"][k] for k in ("overall", "min_recall", "causes")}
    print(json.dumps(summary, indent=1, default=str))
    print("\n".join(grid_tables(report["grid"])))
    print(f"wrote {card}")
    if not all(report["targets"].values()):
        print(f"TARGETS MISSED: {report['targets']}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
