"""``owc predict``: the workers' preprocessing and model on image files."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from services.common import vision
from services.common.settings import InferenceSettings
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
    batch = classifier.preprocess(data, width, height)[None]
    return classifier.postprocess(classifier.predict(batch))[0]


def predict_files(settings: InferenceSettings, images: Sequence[str], *, as_json: bool) -> int:
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
            print(json.dumps(record), flush=True)
        else:
            others = "  ".join(f"{k} {v:.3f}" for k, v in pred.probs.items())
            print(f"{name}: {pred.label} ({pred.confidence:.1%})   [{others}]  model {classifier.model_id}", flush=True)
    return status
