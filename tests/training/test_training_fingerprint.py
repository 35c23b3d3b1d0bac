"""The shipped detector reads the pinned frames of training/fingerprint.py as it did where its model card was made:
the same label and near miss on each, the numbers within tolerance — on whatever CPU runs the suite."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

from training import fingerprint
from training.config import PROJECT_ROOT


def test_this_machine_reads_the_pinned_frames_as_the_reference_says() -> None:
    # `python -m training.…`: NumPy pinned before import, as the card's runs render (training/kernels.py)
    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "training.fingerprint"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["frames"] == fingerprint.FRAMES
    assert report["moved"] == []


def _reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fingerprint.REFERENCE.read_text(encoding="utf-8"))
    return data


def test_the_reference_is_of_the_shipped_detector_and_holds_every_frame() -> None:
    from services.inference.vision import ModelMeta
    from training.config import META_PATH

    ref = _reference()
    assert ref["model_id"] == ModelMeta.load(META_PATH).model_id
    assert len(ref["frames"]) == fingerprint.FRAMES
    labels = {r["label"] for r in ref["frames"]}
    assert {"none", "victory", "defeat", "draw"} <= labels  # every outcome read, and frames that are not one
    assert any(r["near_miss"] for r in ref["frames"])


def test_other_bytes_a_changed_label_or_a_number_beyond_its_tolerance_is_reported() -> None:
    ref = _reference()
    assert fingerprint.compare(ref, ref) == ({"gate": 0.0, "words": 0.0, "confidence": 0.0}, [])

    within = copy.deepcopy(ref)
    within["frames"][0]["gate"][0] += fingerprint.TOLERANCE["gate"] / 2
    drift, moved = fingerprint.compare(ref, within)
    assert moved == [] and 0 < drift["gate"] <= fingerprint.TOLERANCE["gate"]

    got = copy.deepcopy(ref)
    got["frames"][1]["label"] = "draw" if ref["frames"][1]["label"] != "draw" else "none"
    word = next(iter(got["frames"][2]["words"]))
    got["frames"][2]["words"][word] -= 0.01
    got["frames"][3]["jpeg_sha256"] = "0" * 16
    _, moved = fingerprint.compare(ref, got)
    assert len(moved) == 3
    assert moved[0].startswith(f"{ref['frames'][1]['frame']}: label")
    assert moved[1].startswith(f"{ref['frames'][2]['frame']}: words moved by 0.01")
    assert moved[2].startswith(f"{ref['frames'][3]['frame']}: other bytes rendered")


def test_another_detector_is_not_compared_with_this_reference() -> None:
    ref = _reference()
    other = {**ref, "model_id": "vc-000000000000"}
    _, moved = fingerprint.compare(ref, other)
    assert len(moved) == 1 and "--write" in moved[0]
