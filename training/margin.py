"""The reader's margin: how far true banners and negatives sit apart in per-letter word score.

The reader decides on an outcome word's mean log-probability per letter (``accept`` −2.0, ``near_miss``
−2.7 in the shipped metadata). This module tells, on a set of frames the detector has labelled, where the
banners' own words and the negatives' best outcome words fall on that scale — the distribution the model
card publishes (issue 21: "the distribution of per-letter scores for true banners vs. negatives, and the gap
between them"). Pure: it only reads the predictions' ``stages["reader"]["scores"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.inference.classifier import Prediction

# the card's bins, per letter, best first; each is [low, high)
BINS: tuple[tuple[float, float], ...] = (
    (-1.0, float("inf")), (-2.0, -1.0), (-2.7, -2.0), (-4.0, -2.7), (-6.0, -4.0), (float("-inf"), -6.0),
)
QUANTILES = (0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99)


def bin_name(low: float, high: float) -> str:
    if high == float("inf"):
        return f"≥ {low:g}"
    if low == float("-inf"):
        return f"< {high:g}"
    return f"[{low:g}, {high:g})"


def reader_scores(pred: Prediction) -> dict[str, float] | None:
    """Each outcome's best word score per letter on this frame, or ``None`` when the reader did not run."""
    reader = pred.stages.get("reader")
    scores = reader.get("scores") if isinstance(reader, dict) else None
    if not isinstance(scores, dict) or not scores:
        return None
    return {str(k): float(v) for k, v in scores.items()}


def _summary(values: Sequence[float], unread: int) -> dict[str, Any]:
    arr = np.asarray(values, np.float64)
    return {
        "read": len(values),
        "not_read": unread,
        "bins": [int(((arr >= lo) & (arr < hi)).sum()) for lo, hi in BINS],
        "quantiles": {f"{q:g}": (float(np.quantile(arr, q)) if arr.size else float("nan")) for q in QUANTILES},
        "min": float(arr.min()) if arr.size else float("nan"),
        "max": float(arr.max()) if arr.size else float("nan"),
    }


def margin(labels: Sequence[str], preds: Sequence[Prediction], accept: float, near_miss: float) -> dict[str, Any]:
    """Per-letter scores of the frames the reader read: ``banners`` — an outcome frame's own word; ``negatives`` —
    a ``none`` frame's best outcome word. ``gap`` is the banners' median minus the negatives' p99;
    ``banners_above_negatives`` the share of read banner frames scoring above the highest negative;
    ``banners_at_accept`` the share at or above ``accept``; ``negatives_at_accept`` / ``negatives_at_near_miss``
    the number of negatives at or above each level (what the decision's other checks — the look-alikes, the
    centring rule, the list check, the counting rules — must refuse)."""
    own: list[float] = []
    best: list[float] = []
    own_unread = best_unread = 0
    for label, pred in zip(labels, preds, strict=True):
        scores = reader_scores(pred)
        if label == "none":
            if scores is None:
                best_unread += 1
            else:
                best.append(max(scores.values()))
        elif scores is None or label not in scores:
            own_unread += 1
        else:
            own.append(scores[label])
    top_negative = max(best) if best else float("-inf")
    b, n = np.asarray(own, np.float64), np.asarray(best, np.float64)
    return {
        "accept": accept,
        "near_miss": near_miss,
        "bins": [bin_name(lo, hi) for lo, hi in BINS],
        "banners": _summary(own, own_unread),
        "negatives": _summary(best, best_unread),
        "banners_above_negatives": float(np.mean(b > top_negative)) if b.size else float("nan"),
        "banners_at_accept": float(np.mean(b >= accept)) if b.size else float("nan"),
        "negatives_at_accept": int((n >= accept).sum()),
        "negatives_at_near_miss": int((n >= near_miss).sum()),
        "gap": float(np.median(b) - np.quantile(n, 0.99)) if b.size and n.size else float("nan"),
    }


def margin_lines(m: dict[str, Any]) -> list[str]:
    """The card's table and one sentence for :func:`margin`'s result."""
    b, n = m["banners"], m["negatives"]
    lines = [
        "| per-letter score | " + " | ".join(m["bins"]) + " | read | not read |",
        "|---|" + "---|" * (len(m["bins"]) + 2),
        "| banners: own word | " + " | ".join(str(c) for c in b["bins"]) + f" | {b['read']} | {b['not_read']} |",
        "| negatives: best outcome word | " + " | ".join(str(c) for c in n["bins"])
        + f" | {n['read']} | {n['not_read']} |",
        "",
    ]
    q = b["quantiles"]
    lines.append(
        f"Banners' own word: p1 {q['0.01']:.2f}, p5 {q['0.05']:.2f}, p10 {q['0.1']:.2f}, median {q['0.5']:.2f}; "
        f"negatives' best outcome word: median {n['quantiles']['0.5']:.2f}, p99 {n['quantiles']['0.99']:.2f}, "
        f"highest **{n['max']:.2f}**; gap from the banners' median to the negatives' p99 **{m['gap']:+.2f}** per "
        f"letter. {m['banners_at_accept']:.4f} of the read banner frames reach `accept` ({m['accept']:g}) and "
        f"{m['banners_above_negatives']:.4f} score above every negative; {m['negatives_at_near_miss']} negative "
        f"frame(s) reach `near_miss` ({m['near_miss']:g}) and {m['negatives_at_accept']} reach `accept`: those are "
        "left to the look-alikes, the centring rule, the list check and the counting rules (the tail of banners "
        "below `near_miss` is the reader's misses: washed-out, blocky, small captures)."
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.margin``: the card's margin table for a detector on the held-out frames."""
    import argparse
    import json
    from pathlib import Path

    from services.inference.classifier import Classifier
    from training import synth
    from training.config import CACHE_DIR, EVAL_COUNT, EVAL_SEED, MODEL_PATH
    from training.frames import cached_render, detect

    p = argparse.ArgumentParser(prog="python -m training.margin", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=MODEL_PATH)
    p.add_argument("--eval-count", type=int, default=EVAL_COUNT, help="held-out frames (the card's count by default)")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    clf = Classifier(args.model)
    if clf.reader is None:
        p.error(f"{args.model}: a gate alone has no reader, so no margin")
    held = cached_render(EVAL_SEED, args.eval_count, synth.EVAL, args.cache_dir, desc="held-out frames")
    preds = detect(clf, [f.frame for f in held])
    m = margin([str(f.info["label"]) for f in held], preds, clf.reader.spec.accept, clf.reader.spec.near_miss)
    print(f"{clf.model_id}: {len(held)} held-out frames, seed {EVAL_SEED}")
    print("\n".join(margin_lines(m)))
    if args.json:
        args.json.write_text(json.dumps(m, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
