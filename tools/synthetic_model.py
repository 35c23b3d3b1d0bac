"""A small *untrained* stand-in model, written with the ``onnx`` package.

Tests and ``owc bench inference`` (when no shipped model is present) use it:
it has the shape and roughly the cost of a real banner classifier (a few
strided convolutions over the ROI, global pooling, 4 logits) but its weights
are random, so its labels mean nothing. It is never the product model: its
model id starts with ``synthetic-untrained``.

``onnx`` is a development dependency; it is imported only when a model is
generated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from services.inference.vision import MODEL_LABELS, meta_path_for

SYNTHETIC_PREFIX = "synthetic-untrained"
DEFAULT_ROI = {"x0": 0.30, "y0": 0.30, "x1": 0.70, "y1": 0.62}


def write_synthetic_model(
    path: Path,
    *,
    width: int = 128,
    height: int = 64,
    roi: dict[str, float] | None = None,
    channels: tuple[int, ...] = (16, 32, 32),
    strides: tuple[int, ...] | None = None,
    seed: int = 0,
    dynamic_batch: bool = True,
    n_outputs: int = 4,
    logit_bias: tuple[float, ...] | None = None,
    meta_overrides: dict[str, Any] | None = None,
) -> Path:
    """Write ``path`` (.onnx) and its .json metadata; return the .onnx path."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "generating a stand-in model needs the `onnx` package (a development dependency): "
            "pip install onnx, or put the trained model at models/victory_classifier.onnx"
        ) from None

    rng = np.random.default_rng(seed)
    batch: int | str = "batch" if dynamic_batch else 1
    nodes = []
    inits = []
    prev = "input"
    c_in = 3
    steps = strides or (2,) * len(channels)
    if len(steps) != len(channels):
        raise ValueError("strides needs one entry per conv layer")
    for i, (c_out, stride) in enumerate(zip(channels, steps, strict=True)):
        w = (rng.standard_normal((c_out, c_in, 3, 3)) * (2.0 / (c_in * 9)) ** 0.5).astype(np.float32)
        b = np.zeros(c_out, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"conv{i}_w"), numpy_helper.from_array(b, f"conv{i}_b")]
        nodes.append(
            helper.make_node(
                "Conv", [prev, f"conv{i}_w", f"conv{i}_b"], [f"conv{i}"],
                kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        prev = f"relu{i}"
        c_in = c_out
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc_w = (rng.standard_normal((c_in, n_outputs)) * 0.1).astype(np.float32)
    # a large bias makes one class win whatever the picture (tests of outcome handling)
    fc_b = np.asarray(logit_bias or (0.0,) * n_outputs, dtype=np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc_w"), numpy_helper.from_array(fc_b, "fc_b")]
    nodes.append(helper.make_node("MatMul", ["flat", "fc_w"], ["mm"]))
    nodes.append(helper.make_node("Add", ["mm", "fc_b"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "synthetic_victory_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, n_outputs])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))

    meta: dict[str, Any] = {
        "schema_version": 1,
        "model_id": f"{SYNTHETIC_PREFIX}-{width}x{height}-s{seed}" + ("-biased" if logit_bias else ""),
        "labels": list(MODEL_LABELS),
        "roi": dict(roi or DEFAULT_ROI),
        "input": {"width": width, "height": height},
        "normalize": {"scale": 1.0 / 255.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "training": {"note": "untrained random weights; for tests and benchmarks only"},
    }
    meta.update(meta_overrides or {})
    meta_path_for(path).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path
