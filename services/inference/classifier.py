"""The banner detector: ``preprocess → predict → postprocess`` over onnxruntime.

Two stages, both described by the model metadata
(:class:`~services.inference.vision.ModelMeta`, schema 2):

1. the **gate**, a small CNN on every frame (≈0.2 ms): a frame whose
   ``1 - p(none)`` reaches ``gate.threshold`` is a *candidate*. Tuned for
   recall, because a CNN trained on synthetic frames cannot be trusted to
   tell a real banner's word apart;
2. the **reader**, a pretrained text recogniser (:mod:`.reader`), on
   candidates only: it scores each outcome word (and known look-alikes such
   as ``DEFEND``) against the crop and decides (:func:`decide`).

A schema-1 model is the gate alone deciding (used by small test models).
The gate's preprocessing goes through :mod:`services.inference.vision`, the
same functions training uses, so the network sees the same pixels in both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.config.settings import InferenceSettings
from services.inference import listcheck, vision
from services.inference.decision import decide as decide
from services.inference.decision import off_centre as off_centre
from services.inference.reader import Reader, ReaderError, Reading
from services.inference.sessions import onnxruntime, session_options

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
    # each stage's scores, for --explain and the admin page (gate always; reader on candidates)
    stages: dict[str, Any] = field(default_factory=dict)

    @property
    def near_miss(self) -> str | None:
        """The outcome the reader *almost* saw (shown as "saw DEFEAT at 53% — not counted")."""
        reader = self.stages.get("reader")
        return reader.get("near_miss") if isinstance(reader, dict) else None

    @property
    def read(self) -> str:
        """The outcome the reader saw (accepted or a near miss; "" when none or not read)."""
        reader = self.stages.get("reader")
        return str(reader.get("read") or "") if isinstance(reader, dict) else ""

    @property
    def score(self) -> float | None:
        """The reader's best outcome word score (mean log-probability per letter), when it ran."""
        reader = self.stages.get("reader")
        value = reader.get("score") if isinstance(reader, dict) else None
        return float(value) if value is not None else None


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


class Classifier:
    """One onnxruntime session plus the model's metadata."""

    def __init__(
        self,
        model_path: Path,
        *,
        providers: Sequence[str] = ("cpu",),
        intra_op_threads: int = 1,
        reader_threads: int | None = None,
        warmup_batch: int = 8,
    ) -> None:
        ort = onnxruntime()

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
        self.reader: Reader | None = None
        # the list check's strips are read on this many threads at once (services/inference/strips.py); the
        # recogniser itself runs on one: its intra-op threads gain nothing on this model at batch 1
        self.reader_threads = intra_op_threads if reader_threads is None else reader_threads
        if self.meta.reader is not None:
            try:
                self.reader = Reader(self.meta.reader, intra_op_threads=intra_op_threads)
            except ReaderError as exc:
                raise ClassifierError(f"model {self.model_id}: {exc}") from None
        self.warmup(warmup_batch)
        log.info(
            "model %s (%s) ready: gate input %r %dx%d%s, providers %s",
            self.model_id, self.model_path.name, self.input_name,
            self.meta.input.width, self.meta.input.height,
            f", reader {self.meta.reader.package}=={self.meta.reader.version} on candidates"
            if self.meta.reader else " (gate decides alone)",
            ",".join(self.providers),
        )

    @classmethod
    def from_settings(cls, settings: InferenceSettings, model: Path | None = None) -> Classifier:
        return cls(
            model or settings.model,
            providers=settings.providers,
            intra_op_threads=settings.intra_op_threads,
            reader_threads=settings.reader_threads,
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
    def gate_score(self, row: Sequence[float]) -> float:
        """How much the gate believes in *some* banner: ``1 - p(none)``."""
        return 1.0 - float(row[0])

    def postprocess(
        self,
        probs: npt.NDArray[np.float32],
        sources: Sequence[tuple[bytes, int | None, int | None]] | None = None,
        *,
        read_all: bool = False,
    ) -> list[Prediction]:
        """Gate probabilities (and, for a two-stage model, the encoded frames) -> predictions.

        Stateless: a frame the gate passes is read (with the list check when it
        is about to name an outcome) and the reader decides; any other frame is
        ``none`` with the gate's own probabilities. The worker goes through
        :class:`~services.inference.banner.BannerReader`, which adds the read
        schedule and reuses readings per channel.
        """
        out: list[Prediction] = []
        for i, row in enumerate(probs.tolist()):
            stages = self.gate_stages(row)
            candidate = self.is_candidate(row)
            if not (candidate or read_all) or sources is None or self.reader is None:
                out.append(self.unread(row, stages))
                continue
            stages["reader_why"] = "gate" if candidate else "schedule"
            data, width, height = sources[i]
            reading, image = self.reader.read_frame(data, width, height)
            around = self.reader.neighbours(image) if self.wants_list_check(reading) else None
            out.append(self.verdict(stages, reading, around))
        return out

    # the stages, for the stateless path above and the worker's BannerReader -------------------------
    def gate_stages(self, row: Sequence[float]) -> dict[str, Any]:
        gate = {name: round(float(p), 6) for name, p in zip(self.labels, row, strict=True)}
        if self.reader is None or self.meta.gate is None:
            return {"gate": {"probs": gate}}
        return {"gate": {"score": round(self.gate_score(row), 4), "threshold": self.meta.gate.threshold,
                         "probs": gate}}

    def is_candidate(self, row: Sequence[float]) -> bool:
        return self.meta.gate is not None and self.gate_score(row) >= self.meta.gate.threshold

    def unread(self, row: Sequence[float], stages: dict[str, Any]) -> Prediction:
        """A frame the reader did not look at: the gate's own verdict (``none`` for a two-stage model).

        One confidence per answer: the confidence is the published probability of the label.
        """
        gate = stages["gate"]["probs"]
        if self.reader is None or self.meta.gate is None:
            best = max(range(len(row)), key=row.__getitem__)
            return Prediction(self.labels[best], _clip(row[best]), gate, stages)
        # the gate's probabilities; its p(none) is above 1 - threshold, so `none` is the answer
        return Prediction("none", _clip(gate["none"]), dict(gate), stages)

    def wants_list_check(self, reading: Reading) -> bool:
        """The list check runs only when the reading is about to name an outcome (p >= 0.5)."""
        assert self.reader is not None
        spec = self.reader.spec
        if not spec.list_check:
            return False
        final, _ = decide(self.labels, reading.words, spec, reading.centres, reading.heights)
        return max(final[k] for k in self.labels[1:]) >= 0.5

    def verdict(self, stages: dict[str, Any], reading: Reading, around: list[float] | None) -> Prediction:
        """The reader's decision on a reading (and the list check's band scores, when it ran)."""
        assert self.reader is not None
        spec = self.reader.spec
        final, near = decide(self.labels, reading.words, spec, reading.centres, reading.heights)
        read = _read_outcome(self.labels, reading, spec, final, near)
        if around is not None:
            stages["list"] = {**stages.get("list", {}), "scores": around}
            if listcheck.is_list(around, spec):
                # another outcome word right above or below: a list of results, not the banner
                final, near, read = {name: (1.0 if name == "none" else 0.0) for name in self.labels}, None, ""
        best = max(reading.labels.values()) if reading.labels else None
        stages["reader"] = {
            "scores": reading.labels,
            "words": reading.words,
            "text": reading.text,
            "accept": spec.accept,
            "ms": round(reading.ms, 2),
            "near_miss": near,
            "read": read,
            "score": best,
        }
        if reading.looks > 1:
            stages["reader"]["looks"] = reading.looks  # a second look, cut to the crop's text lines, was merged in
        if reading.centres:
            stages["reader"]["centres"] = reading.centres  # where each outcome's word sits in the crop (0.5: centred)
        if reading.heights:
            stages["reader"]["heights"] = reading.heights  # its letters' height over its width per letter (whole: ~1+)
        if reading.widened:
            stages["reader"]["widened"] = True  # the text ran off the crop: a wider crop's look-alikes were merged in
        label = max(final, key=final.__getitem__)
        return Prediction(label, _clip(final[label]), {k: round(v, 6) for k, v in final.items()}, stages)

    def classify(
        self, frames: Sequence[tuple[bytes, int | None, int | None]], *, read_all: bool = False
    ) -> list[Prediction]:
        """Encoded frames ``(data, width, height)`` -> predictions (both stages).

        ``read_all``: read every frame, also those the gate does not pass (what the reader's schedule
        does on a live feed once a banner holds still; ``owc predict``).
        """
        if not frames:
            return []
        batch = np.stack([self.preprocess(d, w, h) for d, w, h in frames])
        return self.postprocess(self.predict(batch), frames, read_all=read_all)


def _read_outcome(
    labels: Sequence[str], reading: Reading, spec: vision.ReaderSpec, final: dict[str, float], near: str | None
) -> str:
    """The outcome the reader saw: the decided one, or the near miss ("" when neither)."""
    if near:
        return near
    label = max(final, key=final.__getitem__)
    return label if label != "none" and reading.labels.get(label, -99.0) >= spec.near_miss else ""


def _clip(p: float) -> float:
    return min(1.0, max(0.0, float(p)))
