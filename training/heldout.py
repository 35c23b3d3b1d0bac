"""Held-out synthetic metrics: per class and language, for the gate alone and for the whole detector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from services.inference.classifier import Prediction
from training.frames import Rendered

THRESHOLDS = (0.1, 0.2, 0.3)
MIN_CONFIDENCE = 0.9  # state.min_confidence default
OUTCOMES = ("victory", "defeat", "draw")
# outcome kinds where the detector may answer `none` instead (a banner mostly hidden by the Tab scoreboard)
MAY_BE_NONE = ("tab_hidden",)


def _rate(mask: npt.NDArray[np.bool_]) -> float:
    return float(mask.mean()) if mask.size else float("nan")


def report(
    frames: Sequence[Rendered], gate: npt.NDArray[np.float32], preds: Sequence[Prediction],
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, Any]:
    """Tables of the held-out frames: outcome frames by class x language, none frames by kind, and more.

    ``gate_<t>`` columns: the share of frames whose gate score is at least ``t`` (recall on outcome
    frames, candidate rate on ``none`` frames).
    """
    labels = np.asarray([f.info["label"] for f in frames])
    langs = np.asarray([f.info.get("lang", "") for f in frames])
    kinds = np.asarray([str(f.info.get("kind", "")) for f in frames])
    captures = np.asarray([str(f.info.get("capture", "plain")) for f in frames])
    pred = np.asarray([p.label for p in preds])
    conf = np.asarray([p.confidence for p in preds], np.float64)
    lenient = np.isin(kinds, MAY_BE_NONE)
    correct = (pred == labels) | (lenient & (pred == "none"))
    confident = (pred == labels) & (conf >= MIN_CONFIDENCE) | (lenient & (pred == "none"))
    wrong_outcome = (pred != labels) & (pred != "none")

    def outcome_row(m: npt.NDArray[np.bool_]) -> dict[str, Any]:
        return {
            "n": int(m.sum()),
            **{f"gate_{t:g}": _rate(gate[m] >= t) for t in thresholds},
            "detector": _rate(correct[m]),
            "detector_confident": _rate(confident[m]),
            "wrong_outcome": int((wrong_outcome & m).sum()),
        }

    by_class_lang: dict[str, Any] = {}
    for lab in OUTCOMES:
        for lang in ("en", "ja"):
            m = (labels == lab) & (langs == lang)
            if m.any():
                by_class_lang[f"{lab}/{lang}"] = outcome_row(m)
        by_class_lang[f"{lab}/all"] = outcome_row(labels == lab)
    outcome = labels != "none"
    by_outcome_kind = {k: outcome_row(outcome & (kinds == k)) for k in sorted(set(kinds[outcome].tolist()))}
    by_capture = {c: outcome_row(outcome & (captures == c)) for c in sorted(set(captures[outcome].tolist()))}
    none = labels == "none"

    def none_row(m: npt.NDArray[np.bool_]) -> dict[str, Any]:
        return {
            "n": int(m.sum()),
            **{f"gate_{t:g}": _rate(gate[m] >= t) for t in thresholds},
            "detector_outcome": int(((pred != "none") & m).sum()),
            "detector_confident_outcome": int(((pred != "none") & (conf >= MIN_CONFIDENCE) & m).sum()),
        }

    by_none_kind = {k: none_row(none & (kinds == k)) for k in sorted(set(kinds[none].tolist()))}
    per_class = {lab: _rate(correct[labels == lab]) for lab in ("none", *OUTCOMES)}
    return {
        "count": len(frames),
        "accuracy": _rate(correct),
        "per_class": per_class,
        "outcomes": by_class_lang,
        "outcome_kinds": by_outcome_kind,
        "outcome_captures": by_capture,
        "none": none_row(none),
        "none_kinds": by_none_kind,
        "thresholds": list(thresholds),
    }
