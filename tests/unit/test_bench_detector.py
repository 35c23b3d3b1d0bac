"""The detector bench's split of a sequence's CPU: fresh readings apart from every other frame."""

from __future__ import annotations

from services.inference.classifier import Prediction
from tools.bench.detector import split_reads


def _pred(reader: dict[str, object] | None) -> Prediction:
    stages: dict[str, object] = {"gate": {"score": 0.1}}
    if reader is not None:
        stages["reader"] = reader
    return Prediction("none", 0.9, {"none": 0.9}, stages)


def test_fresh_reads_apart_from_the_rest() -> None:
    preds = [_pred(None), _pred({"score": -8.0}), _pred({"score": -8.0, "reused": True}), _pred(None)]
    cpu = [2.0, 20.0, 3.0, 1.0]
    out = split_reads(preds, cpu)
    assert out == {"fresh_reads": 1, "fresh_read_cpu_ms_mean": 20.0, "fresh_reads_cpu_ms_per_frame": 5.0,
                   "other_frames_cpu_ms_mean": 2.0}


def test_no_reads() -> None:
    out = split_reads([_pred(None)] * 2, [1.0, 3.0])
    assert out["fresh_reads"] == 0 and out["fresh_read_cpu_ms_mean"] is None
    assert out["fresh_reads_cpu_ms_per_frame"] == 0.0 and out["other_frames_cpu_ms_mean"] == 2.0
    assert split_reads([], [])["other_frames_cpu_ms_mean"] is None
