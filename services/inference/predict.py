"""``owc predict``: the workers' preprocessing and model on image files."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from services.common.config.settings import InferenceSettings
from services.inference import vision
from services.inference.classifier import Classifier, ClassifierError, Prediction


def predict_file(classifier: Classifier, path: Path) -> Prediction:
    """Classify one image file as a frame of its own size.

    The image's width and height are passed along exactly as a frame carries
    them, so a JPEG gets the same reduced-scale decode as a captured frame of
    that size would.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise vision.FrameDecodeError(exc.strerror or str(exc)) from None
    height, width = vision.decode(data).shape[:2]
    # a screenshot is a banner area that holds still: on a live feed the reader's schedule reads it
    # whatever the gate says, so the reader reads every image here
    return classifier.classify([(data, width, height)], read_all=True)[0]


def explain_lines(pred: Prediction) -> list[str]:
    """Each stage's scores in words a streamer can follow."""
    gate = pred.stages.get("gate", {})
    lines = []
    if "score" in gate:
        passed = gate["score"] >= gate["threshold"]
        if passed:
            then = "passed to the reader"
        elif "reader" in pred.stages:
            then = "not a candidate; read anyway (the reader's schedule reads a banner area that holds still)"
        else:
            then = "not a candidate: none"
        lines.append(f"  gate:   banner score {gate['score']:.3f} (candidate from {gate['threshold']}) -> {then}")
    else:
        lines.append("  gate:   " + "  ".join(f"{k} {v:.3f}" for k, v in gate.get("probs", {}).items())
                     + " (single-stage model: the gate decides)")
    reader = pred.stages.get("reader")
    if reader:
        words = "  ".join(f"{w} {s:.2f}" for w, s in sorted(reader["words"].items(), key=lambda kv: -kv[1])[:6])
        how = "reused the channel's last reading" if reader.get("reused") else f"in {reader['ms']:.1f} ms"
        lines.append(f"  reader: read {reader['text']!r} {how}; "
                     f"best words (mean log-prob per letter, counts from {reader['accept']}): {words}")
        if reader.get("score") is not None:
            seen = f"saw {reader['read'].upper()}" if reader.get("read") else "saw no outcome word"
            lines.append(f"  label:  {seen} (best outcome word {reader['score']:.2f} per letter): the evidence the "
                         "counting rules add up over the banner's frames")
        listed = pred.stages.get("list")
        if isinstance(listed, dict) and "scores" in listed:
            around = "  ".join(f"{s:.2f}" for s in listed["scores"])
            vetoed = any(s >= reader["accept"] for s in listed["scores"])
            lines.append(f"  list:   best outcome word just above / below: {around} -> "
                         + ("another result next to it: a list of results, not the banner (none)" if vetoed
                            else "stands alone: the banner"))
        elif isinstance(listed, dict) and listed.get("deferred"):
            lines.append("  list:   not yet (a first frame cannot count alone; checked on the next one)")
        if reader.get("near_miss"):
            lines.append(f"  near miss: saw {reader['near_miss'].upper()} at "
                         f"{pred.probs[reader['near_miss']]:.0%} - not counted")
    return lines


def predict_files(settings: InferenceSettings, images: Sequence[str], *, as_json: bool, explain: bool = False) -> int:
    try:
        classifier = Classifier.from_settings(settings)
    except ClassifierError as exc:
        print(f"owc predict: {exc}", file=sys.stderr)
        return 2
    status = 0
    for name in images:
        try:
            pred = predict_file(classifier, Path(name))
        except vision.FrameDecodeError as exc:
            print(f"owc predict: cannot read {name!r}: {exc}", file=sys.stderr)
            status = 2
            continue
        if as_json:
            record = {
                "image": name,
                "label": pred.label,
                "confidence": round(pred.confidence, 6),
                "probabilities": pred.probs,
                "model": classifier.model_id,
            }
            if explain:
                record["stages"] = pred.stages
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            others = "  ".join(f"{k} {v:.3f}" for k, v in pred.probs.items())
            # one confidence per answer: the label's own probability, which the list shows too
            print(f"{name}: {pred.label} ({pred.confidence:.1%})   [{others}]  model {classifier.model_id}", flush=True)
            if explain:
                print("\n".join(explain_lines(pred)), flush=True)
    return status
