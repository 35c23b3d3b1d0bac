"""ONNX export with a hard equivalence check, plus the model's JSON metadata (needs torch)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import torch

from services.inference.sessions import onnxruntime
from services.inference.vision import MODEL_LABELS, ModelMeta
from training.config import INPUT, NORMALIZE, OPSET, ROI
from training.detector import assemble

MAX_ABS_DIFF = 1e-4


class ExportError(RuntimeError):
    pass


def model_id_for(onnx_bytes: bytes) -> str:
    return "vc-" + hashlib.sha256(onnx_bytes).hexdigest()[:12]


def export_onnx(model: torch.nn.Module, check_inputs: npt.NDArray[np.float32]) -> tuple[bytes, float]:
    """Export ``model`` (NCHW float32, dynamic batch) and verify it against onnxruntime.

    ``check_inputs`` are real preprocessed frames. Raises :class:`ExportError`
    when any logit differs by more than :data:`MAX_ABS_DIFF`.
    """
    model.eval()
    dummy = torch.from_numpy(check_inputs[:1].copy())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        data = path.read_bytes()
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto)
    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(torch.from_numpy(check_inputs)).numpy()
    got = sess.run(None, {"input": check_inputs})[0]
    single = np.concatenate(
        [sess.run(None, {"input": check_inputs[i:i + 1]})[0] for i in range(min(8, len(check_inputs)))]
    )
    diff = max(float(np.abs(expected - got).max()), float(np.abs(expected[: len(single)] - single).max()))
    if got.shape != (len(check_inputs), len(MODEL_LABELS)) or not diff <= MAX_ABS_DIFF:
        raise ExportError(f"onnxruntime disagrees with PyTorch: max abs diff {diff:.3g} > {MAX_ABS_DIFF} "
                          f"(output shape {got.shape})")
    return data, diff


def build_meta(onnx_bytes: bytes, training: dict[str, Any]) -> dict[str, Any]:
    """The whole detector's metadata: this gate plus the reader stage (:mod:`training.detector`)."""
    gate = {
        "schema_version": 1,
        "model_id": model_id_for(onnx_bytes),
        "labels": list(MODEL_LABELS),
        "roi": ROI.model_dump(),
        "input": INPUT.model_dump(),
        "normalize": NORMALIZE.model_dump(),
        "onnx": {"opset": OPSET, "input": "input", "output": "logits", "dynamic_batch": True,
                 "sha256": hashlib.sha256(onnx_bytes).hexdigest()},
        "training": training,
    }
    ModelMeta.model_validate(gate)
    return assemble(gate)


def write_model(onnx_bytes: bytes, meta: dict[str, Any], model_path: Path, meta_path: Path) -> None:
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_path.with_suffix(".onnx.tmp")
    tmp.write_bytes(onnx_bytes)
    tmp.replace(model_path)
    tmp_meta = meta_path.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp_meta.replace(meta_path)
