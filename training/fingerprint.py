"""The shipped detector's outputs on a handful of pinned frames, against the ones recorded with it.

``python -m training.fingerprint`` renders :data:`FRAMES` (banner episodes' frames before, at and after the
banner's onset, and long-run scenes that read close to an outcome: the pinned renderer draws the same bytes on
every x86-64 CPU, training/kernels.py) and runs the shipped detector on each through
:meth:`~services.inference.classifier.Classifier.classify` with ``read_all`` — the gate's probabilities, the
reader's per-letter word scores, its label, confidence and near miss — then compares them with
:data:`REFERENCE`, recorded on the machine that made the model card. Exit 0 when every frame is the same bytes,
every label and near miss the same and every number within its tolerance, 1 (with what moved) otherwise.

Why: the card's figures come from the detector's own kernels. onnxruntime, OpenCV and NumPy pick their kernels by
CPU (AVX-512, AVX2, SSE), so another CPU computes the same model on the same frames to slightly different floats.
This says how far apart they are on this machine, and fails when a label would change (the card's figures could
then change too). ``make eval`` records the reference with the card it writes, ``--write`` alone does the same:
needed whenever the detector or the generator changes (the reference names the detector it was recorded with;
another one fails the check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.config import MODEL_PATH, MODELS_DIR

REFERENCE = MODELS_DIR / "victory_classifier.fingerprint.json"
EPISODE_SEED = 4001  # the card's episodes (training.episode_eval.EPISODE_SEED)
POOL_SEED = 2001  # the card's long run (training.fp_run)
# (grid cell, frames from the banner's onset): victory/defeat/draw, English and Japanese, plain, blocky and GIF
# captures; −3 gameplay, 0 the entry frame, 1 and 6 the banner standing
EPISODE_FRAMES = tuple((cell, k) for cell in (21, 247, 505, 650) for k in (-3, 0, 1, 6))
# long-run scenes read as an outcome at some point: a blocky VICTORIES, two career screens
POOL_SCENES = (1488, 1713, 2730)
FRAMES = len(EPISODE_FRAMES) + len(POOL_SCENES)
TOLERANCE = {"gate": 1e-4, "words": 2e-3, "confidence": 5e-3}  # absolute; words are per-letter log-probabilities


def render() -> list[tuple[str, bytes, int, int]]:
    """:data:`FRAMES` frames, pinned: ``(name, jpeg, width, height)``."""
    from training import episode_eval, frames

    out: list[tuple[str, bytes, int, int]] = []
    for cell in sorted({c for c, _ in EPISODE_FRAMES}):
        episode = episode_eval._render((EPISODE_SEED, cell, 0, "eval"))
        onset = int(episode[0].info["onset"])
        for c, k in EPISODE_FRAMES:
            if c == cell:
                f = episode[onset + k]
                out.append((f"episode cell {cell} k={k:+d}", f.data, f.width, f.height))
    for scene in POOL_SCENES:
        r = frames._render((POOL_SEED, scene, "eval", "none", (640, 360), 0, 100))
        out.append((f"pool {POOL_SEED} scene {scene}", r.data, r.width, r.height))
    return out


def outputs(model: Path = MODEL_PATH) -> dict[str, Any]:
    """The detector's id and its outputs on each frame."""
    from services.inference.classifier import Classifier

    clf = Classifier(model)
    rows = []
    for name, data, w, h in render():
        gate = clf.predict(clf.preprocess(data, w, h)[None])  # classify's own steps, its gate output kept
        p = clf.postprocess(gate, [(data, w, h)], read_all=True)[0]
        reader = p.stages.get("reader") or {}
        rows.append({"frame": name, "jpeg_sha256": hashlib.sha256(data).hexdigest()[:16],
                     "gate": [float(v) for v in gate[0]], "label": p.label,
                     "confidence": round(p.confidence, 6), "near_miss": p.near_miss or "",
                     "words": {k: float(v) for k, v in (reader.get("words") or {}).items()}})
    return {"model_id": clf.meta.model_id, "frames": rows}


def record(path: Path = REFERENCE, model: Path = MODEL_PATH) -> dict[str, Any]:
    """Record this machine's outputs as the reference (``make eval`` does, with the card)."""
    got = outputs(model)
    _write(path, got)
    return got


def _write(path: Path, got: dict[str, Any]) -> None:
    path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def compare(reference: dict[str, Any], got: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """The largest difference of each kind, and what moved beyond :data:`TOLERANCE` (empty: the same)."""
    if reference["model_id"] != got["model_id"]:
        return {}, [f"the reference is of {reference['model_id']}, the detector is {got['model_id']}: record it "
                    "again with `python -m training.fingerprint --write`"]
    drift = {"gate": 0.0, "words": 0.0, "confidence": 0.0}
    moved: list[str] = []
    for ref, new in zip(reference["frames"], got["frames"], strict=True):
        name = ref["frame"]
        if ref["jpeg_sha256"] != new["jpeg_sha256"]:
            moved.append(f"{name}: other bytes rendered (the render pin does not hold here: training/kernels.py)")
        for key in ("label", "near_miss"):
            if ref[key] != new[key]:
                moved.append(f"{name}: {key} {ref[key]!r} → {new[key]!r}")
        if set(ref["words"]) != set(new["words"]):
            moved.append(f"{name}: read {sorted(ref['words']) or 'nothing'} → {sorted(new['words']) or 'nothing'}")
        pairs = {"gate": list(zip(ref["gate"], new["gate"], strict=True)),
                 "words": [(v, new["words"][k]) for k, v in ref["words"].items() if k in new["words"]],
                 "confidence": [(ref["confidence"], new["confidence"])]}
        for kind, values in pairs.items():
            worst = max((abs(a - b) for a, b in values), default=0.0)
            drift[kind] = max(drift[kind], worst)
            if worst > TOLERANCE[kind]:
                moved.append(f"{name}: {kind} moved by {worst:.2g} (tolerance {TOLERANCE[kind]:g})")
    return drift, moved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fingerprint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"record the reference ({REFERENCE.name})")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--json", type=Path, help="also write this machine's outputs here")
    args = parser.parse_args(argv)
    if args.write:
        got = record(args.reference, args.model)
        print(f"recorded {len(got['frames'])} frames of {got['model_id']} in {args.reference}")
        return 0
    got = outputs(args.model)
    if args.json:
        _write(args.json, got)
    if not args.reference.is_file():
        print(f"no reference at {args.reference}: record one with --write", file=sys.stderr)
        return 2
    drift, moved = compare(json.loads(args.reference.read_text(encoding="utf-8")), got)
    print(json.dumps({"model_id": got["model_id"], "frames": len(got["frames"]), "largest_difference": drift,
                      "tolerance": TOLERANCE, "moved": moved}, indent=1, ensure_ascii=False))
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
