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


def test_the_region_decode_box_is_the_worker_s() -> None:
    """The ROI measured by tools.bench.roi_decode is the box the worker crops from its reduced decode."""
    from services.inference import vision
    from tools.bench.roi_decode import roi_box_at_scale

    meta = vision.ModelMeta.model_validate({
        "model_id": "t", "roi": {"x0": 0.35, "y0": 0.31, "x1": 0.67, "y1": 0.61},
        "input": {"width": 96, "height": 48}})
    assert roi_box_at_scale(640, 360, meta) == (2, (112, 56, 214, 110))
    assert roi_box_at_scale(1920, 1080, meta) == (4, vision.roi_box(480, 270, meta.roi))
    # an odd size: libjpeg's scaled size rounds up, and so does the box's frame
    reduction, box = roi_box_at_scale(1281, 721, meta)
    assert reduction == 4 and box == vision.roi_box(321, 181, meta.roi)
