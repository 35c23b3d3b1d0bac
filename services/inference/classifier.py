"""The banner classifier: ``preprocess → predict → postprocess`` over onnxruntime.

The model and its metadata (:class:`~services.common.vision.ModelMeta`) are
loaded together and checked against each other; preprocessing goes through
:mod:`services.common.vision`, the same functions training uses, so the
network sees the same pixels in both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common import vision
from services.common.settings import InferenceSettings

log = logging.getLogger("owc.inference")

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


class ClassifierError(RuntimeError):
    """The model cannot be used (missing, unreadable, or not matching its metadata)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    confidence: float
    probs: dict[str, float]


def resolve_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """Map config names to onnxruntime providers, keeping the available ones in order.

    Unknown names are an error; known but unavailable ones are skipped with one
    log line each; the CPU provider always ends the list as the fallback.
    """
    out: list[str] = []
    for name in requested:
        key = name.strip().lower()
        if key not in PROVIDERS:
            raise ClassifierError(
                f"inference.providers: unknown execution provider {name!r}; "
                f"use any of {', '.join(PROVIDERS)}"
            )
        provider = PROVIDERS[key]
        if provider in available:
            if provider not in out:
                out.append(provider)
        else:
            log.warning(
                "execution provider %r (%s) is not available in this onnxruntime build "
                "(available: %s); falling back to the next one in inference.providers, then CPU",
                key, provider, ", ".join(available) or "none",
            )
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


def session_options(intra_op_threads: int) -> Any:
    """Options for a small model on a shared PC: few threads, no busy-waiting."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # spinning threads burn a core while waiting for work: bad next to a game and OBS
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class Classifier:
    """One onnxruntime session plus the model's metadata."""

    def __init__(
        self,
        model_path: Path,
        *,
        providers: Sequence[str] = ("cpu",),
        intra_op_threads: int = 1,
        warmup_batch: int = 8,
    ) -> None:
        import onnxruntime as ort

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ClassifierError(
                f"model {str(self.model_path)!r} not found: train one (`make train`) or point "
                "inference.model (OWC_INFERENCE__MODEL, --model) at a .onnx file"
            )
        try:
            self.meta = vision.ModelMeta.load(vision.meta_path_for(self.model_path))
        except vision.ModelMetaError as exc:
            raise ClassifierError(str(exc)) from None
        chosen = resolve_providers(providers, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), session_options(intra_op_threads), providers=chosen
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ClassifierError(f"model {str(self.model_path)!r} cannot be loaded: {exc}") from None
        self.providers: list[str] = list(self.session.get_providers())
        self._check_contract()
        self.labels: tuple[str, ...] = tuple(self.meta.labels)
        self.model_id = self.meta.model_id
        self.warmup(warmup_batch)
        log.info(
            "model %s (%s) ready: input %r %dx%d, providers %s",
            self.model_id, self.model_path.name, self.input_name,
            self.meta.input.width, self.meta.input.height, ",".join(self.providers),
        )

    @classmethod
    def from_settings(cls, settings: InferenceSettings, model: Path | None = None) -> Classifier:
        return cls(
            model or settings.model,
            providers=settings.providers,
            intra_op_threads=settings.intra_op_threads,
            warmup_batch=settings.batch_size,
        )

    def _check_contract(self) -> None:
        where = f"model {str(self.model_path)!r} and its metadata disagree"
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1:
            raise ClassifierError(f"{where}: the model has {len(inputs)} inputs, expected 1")
        spec = inputs[0]
        self.input_name: str = spec.name
        shape = list(spec.shape)
        if len(shape) != 4:
            raise ClassifierError(f"{where}: input {spec.name!r} has shape {shape}, expected NCHW")
        _, c, h, w = shape
        m = self.meta.input
        if c not in (3, None) and not isinstance(c, str):
            raise ClassifierError(f"{where}: input has {c} channels, expected 3")
        if (isinstance(h, int) and h != m.height) or (isinstance(w, int) and w != m.width):
            raise ClassifierError(
                f"{where}: the model's input is {w}x{h} (WxH) but the metadata says "
                f"{m.width}x{m.height}"
            )
        if spec.type != "tensor(float)":
            raise ClassifierError(f"{where}: input type is {spec.type}, expected tensor(float)")
        # a fixed batch dimension of 1 means frames go through one at a time
        self.max_batch: int | None = shape[0] if isinstance(shape[0], int) else None
        if not outputs:
            raise ClassifierError(f"{where}: the model has no outputs")
        out_shape = list(outputs[0].shape)
        n_classes = out_shape[-1] if out_shape else None
        if n_classes != len(self.meta.labels):
            raise ClassifierError(
                f"{where}: the model has {n_classes} outputs (shape {out_shape}), "
                f"expected {len(self.meta.labels)} ({', '.join(self.meta.labels)})"
            )
        self.output_name: str = outputs[0].name

    def warmup(self, batch: int = 8) -> None:
        """Run the model once so the first real frame does not pay for allocation."""
        m = self.meta.input
        self.predict(np.zeros((max(1, batch), 3, m.height, m.width), dtype=np.float32))

    # preprocess -----------------------------------------------------------
    def decode(self, data: bytes, width: int | None = None, height: int | None = None) -> npt.NDArray[np.uint8]:
        """Decode a frame for the model (reduced JPEG decode when the frame size allows)."""
        return vision.decode_frame(data, self.meta, width, height)

    def preprocess_image(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return vision.preprocess_image(image_bgr, self.meta)

    def preprocess(self, data: bytes, width: int | None = None, height: int | None = None) -> npt.NDArray[np.float32]:
        """Encoded frame -> ``(3, H, W)`` input (raises :class:`vision.FrameDecodeError`)."""
        return vision.preprocess_bytes(data, self.meta, width, height)

    # predict --------------------------------------------------------------
    def predict(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``(N, 3, H, W)`` inputs -> ``(N, classes)`` probabilities."""
        if batch.ndim == 3:
            batch = batch[None]
        if self.max_batch is not None and batch.shape[0] != self.max_batch:
            parts = [self._run(batch[i : i + 1]) for i in range(batch.shape[0])]
            logits = np.concatenate(parts, axis=0)
        else:
            logits = self._run(batch)
        return vision.softmax(logits)

    def _run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        result = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(result[0], dtype=np.float32).reshape(batch.shape[0], -1)

    # postprocess ----------------------------------------------------------
    def postprocess(self, probs: npt.NDArray[np.float32]) -> list[Prediction]:
        out: list[Prediction] = []
        best = probs.argmax(axis=1)
        for row, i in zip(probs.tolist(), best.tolist(), strict=True):
            out.append(
                Prediction(
                    label=self.labels[i],
                    confidence=min(1.0, max(0.0, float(row[i]))),
                    probs={name: round(float(p), 6) for name, p in zip(self.labels, row, strict=True)},
                )
            )
        return out

    def classify(self, frames: Sequence[tuple[bytes, int | None, int | None]]) -> list[Prediction]:
        """Convenience: encoded frames ``(data, width, height)`` -> predictions."""
        if not frames:
            return []
        batch = np.stack([self.preprocess(d, w, h) for d, w, h in frames])
        return self.postprocess(self.predict(batch))
