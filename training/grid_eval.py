"""Recall on the evaluation grid (every outcome x colour x weight x scene x language) and the gameplay cost."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from services.inference.classifier import Prediction
from training.frames import Detector, FrameTuple, Rendered
from training.synth.grid import CELLS, COLOURS, LANGS, SCENES, WEIGHTS

GRID_SEED = 3001  # held-out split, a seed nothing else uses
GRID_PER_CELL = 2  # 720 cells x 2 = 1440 banners; every factor value gets >= 144 banners per outcome
MIN_CONFIDENCE = 0.9
OUTCOMES = ("victory", "defeat", "draw")
FACTORS: dict[str, tuple[str, ...]] = {"colour": COLOURS, "weight": WEIGHTS, "scene": SCENES, "lang": LANGS}


def _rate(mask: npt.NDArray[np.bool_]) -> float:
    return float(mask.mean()) if mask.size else float("nan")


def grid_report(
    frames: Sequence[Rendered], gate: npt.NDArray[np.float32], preds: Sequence[Prediction], threshold: float
) -> dict[str, Any]:
    """Gate recall (score >= ``threshold``) and detector recall (its outcome at conf >= 0.9) per grid factor."""
    info = {k: np.asarray([str(f.info[k]) for f in frames]) for k in ("label", *FACTORS)}
    label = info["label"]
    passed = gate >= threshold
    pred = np.asarray([p.label for p in preds])
    conf = np.asarray([p.confidence for p in preds], np.float64)
    right = (pred == label) & (conf >= MIN_CONFIDENCE)
    wrong = (pred != label) & (pred != "none")

    def row(m: npt.NDArray[np.bool_]) -> dict[str, Any]:
        return {"n": int(m.sum()), "gate": _rate(passed[m]), "detector": _rate(right[m]),
                "wrong_outcome": int((wrong & m).sum())}

    by: dict[str, dict[str, dict[str, Any]]] = {}
    for factor, values in FACTORS.items():
        by[factor] = {v: {o: row((info[factor] == v) & (label == o)) for o in OUTCOMES} for v in values}
    cells = []
    for cell in CELLS:
        o, c, w, s, lang = cell
        m = (label == o) & (info["colour"] == c) & (info["weight"] == w) & (info["scene"] == s) & (info["lang"] == lang)
        if m.any():
            cells.append({"cell": "/".join(cell), **row(m)})
    missed = [f"{'/'.join(str(frames[int(i)].info[k]) for k in ('label', *FACTORS))} gate {gate[i]:.3f}"
              for i in np.flatnonzero(~passed)]
    return {
        "count": len(frames),
        "threshold": threshold,
        "overall": {o: row(label == o) for o in OUTCOMES},
        "by": by,
        "cells": len(cells),
        "cells_full_gate": sum(c["gate"] == 1.0 for c in cells),
        "min_gate_colour_outcome": min(r["gate"] for v in by["colour"].values() for r in v.values()),
        "missed": missed[:40],
        "missed_count": len(missed),
        "wrong_outcome": int(wrong.sum()),
    }


def grid_tables(g: dict[str, Any]) -> list[str]:
    """Markdown: gate / detector recall per outcome for every value of every factor."""
    per_cell = g["count"] // max(1, g["cells"])
    lines = [
        f"{g['count']} banners ({g['cells']} cells of 3 outcomes × {len(COLOURS)} colours × {len(WEIGHTS)} weights "
        f"× {len(SCENES)} scenes × {len(LANGS)} languages, {per_cell} per cell, seed {GRID_SEED}, held-out "
        "fonts and photos, any capture size and recording). Each entry: **gate recall** (1 − p(none) ≥ "
        f"{g['threshold']:g}) / detector recall (its outcome at confidence ≥ {MIN_CONFIDENCE}, one frame).",
        "",
        "| | " + " | ".join(OUTCOMES) + " |",
        "|---|---|---|---|",
        "| all | " + " | ".join(f"**{g['overall'][o]['gate']:.3f}** / {g['overall'][o]['detector']:.3f}"
                                for o in OUTCOMES) + " |",
    ]
    for factor in FACTORS:
        for v, r in g["by"][factor].items():
            lines.append(f"| {factor} {v} | " + " | ".join(f"{r[o]['gate']:.3f} / {r[o]['detector']:.3f}"
                                                          for o in OUTCOMES) + " |")
    lines += [
        "",
        f"Cells where the gate passed every banner: {g['cells_full_gate']} of {g['cells']}; lowest gate recall of "
        f"an outcome × colour: {g['min_gate_colour_outcome']:.3f}; wrong outcomes: {g['wrong_outcome']}.",
    ]
    if g["missed"]:
        lines.append(f"Banners the gate missed ({g['missed_count']}): " + "; ".join(g["missed"]) + ".")
    return lines


def gameplay_cost(detector: Detector, frames: Sequence[FrameTuple], gate: npt.NDArray[np.float32],
                  threshold: float) -> dict[str, Any]:
    """CPU per frame of the whole detector on gameplay frames, one frame per call (the worker's worst case)."""
    for f in frames[:5]:
        detector.classify([f])
    cpu = []
    for f in frames:
        t = time.process_time()
        detector.classify([f])
        cpu.append(time.process_time() - t)
    arr = np.asarray(cpu) * 1000
    return {"frames": len(frames), "candidate_rate": _rate(gate >= threshold), "cpu_ms_mean": float(arr.mean()),
            "cpu_ms_p50": float(np.percentile(arr, 50)), "cpu_ms_p99": float(np.percentile(arr, 99))}
