"""Rendered frames as the detector receives them (JPEG bytes), cached, and the gate scored on them.

The evaluation feeds these through the detector's public API
(:meth:`services.inference.classifier.Classifier.classify`) and, for the gate
alone, through the CNN's ONNX file with training's own preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from services.inference.classifier import Classifier, Prediction
from services.inference.vision import MODEL_LABELS, preprocess_bytes, softmax
from training import kernels, synth
from training.config import preprocess_meta

FrameTuple = tuple[bytes, int | None, int | None]


@dataclass(frozen=True)
class Rendered:
    data: bytes
    width: int
    height: int
    info: dict[str, Any]

    @property
    def frame(self) -> FrameTuple:
        return self.data, self.width, self.height


class Detector(Protocol):
    """What the evaluation needs of a detector: the public ``classify`` call."""

    def classify(self, frames: Sequence[FrameTuple]) -> list[Prediction]: ...


class GateScorer(Protocol):
    def scores(self, frames: Sequence[FrameTuple]) -> npt.NDArray[np.float32]: ...


class Gate:
    """The CNN alone: gate score = 1 - p(none), straight from its ONNX file (training's preprocessing)."""

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        from services.inference.sessions import onnxruntime

        ort = onnxruntime()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = str(self.session.get_inputs()[0].name)
        self.meta = preprocess_meta()

    def probs(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = [np.asarray(self.session.run(None, {self.input_name: x[i:i + 256]})[0], np.float32)
               for i in range(0, len(x), 256)]
        return softmax(np.concatenate(out))

    def scores(self, frames: Sequence[FrameTuple]) -> npt.NDArray[np.float32]:
        if not frames:
            return np.zeros(0, np.float32)
        x = np.stack([preprocess_bytes(d, self.meta, w, h) for d, w, h in frames])
        p = self.probs(x)
        return np.asarray(1.0 - p[:, MODEL_LABELS.index("none")], np.float32)


def detect(detector: Detector, frames: Sequence[FrameTuple], batch: int = 64) -> list[Prediction]:
    out: list[Prediction] = []
    for i in range(0, len(frames), batch):
        out += detector.classify(list(frames[i:i + batch]))
    return out


# ---------------------------------------------------------------- rendering and caching


def _render(job: tuple[int, int, str, str | None, tuple[int, int] | None, int, int]) -> Rendered:
    seed, index, split_name, label, size, grid, count = job
    split = synth.SPLITS[split_name]
    with kernels.rendering():  # the same bytes on every CPU
        if grid:  # the evaluation grid, ``grid`` banners per cell
            from training.synth.grid import render_grid_sample

            data, w, h, info = render_grid_sample(seed, index, split, grid, grid_step(count, grid))
        else:
            data, w, h, info = synth.render_sample(seed, index, split, label=label, size=size)
    return Rendered(data, w, h, info)


def grid_step(count: int, grid: int) -> int:
    """Every ``step``-th cell of the grid when ``count`` frames of ``grid`` per cell do not cover it (a quick grid,
    spread over every factor)."""
    from training.synth.grid import CELLS as GRID_CELLS

    cells = max(1, count // grid)
    return 1 if cells >= len(GRID_CELLS) else len(GRID_CELLS) // cells + 1


def grid_cells(count: int, grid: int) -> list[int]:
    """The grid cells ``count`` frames of ``grid`` per cell draw (:func:`training.synth.grid.render_grid_sample`)."""
    from training.synth.grid import CELLS as GRID_CELLS

    step = grid_step(count, grid)
    return sorted({((i // grid) * step) % len(GRID_CELLS) for i in range(count)})


def render(
    seed: int,
    count: int,
    split: synth.Split,
    label: str | None = None,
    size: tuple[int, int] | None = None,
    workers: int | None = None,
    desc: str = "",
    grid: int = 0,
) -> list[Rendered]:
    from training.dataset import _progress

    jobs = [(seed, i, split.name, label, size, grid, count) for i in range(count)]
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    out: list[Rendered] = []
    bar = _progress(total=count, desc=desc or f"render {split.name} seed={seed}")
    if workers == 1 or count < 2:  # else a pool, collected in job order: the same bytes as one process
        for job in jobs:
            out.append(_render(job))
            bar.update(1)
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            for r in pool.imap(_render, jobs, chunksize=16):
                out.append(r)
                bar.update(1)
    bar.close()
    return out


def _key(seed: int, count: int, split: synth.Split, label: str | None, size: tuple[int, int] | None,
         grid: int = 0) -> str:
    from training.synth.assets import fingerprint_digest

    blob = json.dumps({"gen": synth.GENERATOR_VERSION, "seed": seed, "count": count, "split": split.name,
                       "label": label, "size": size, "grid": grid, "natural": synth.natural_available(split),
                       "fonts": synth.fonts_in_use(split), "render": fingerprint_digest(split),
                       # which cells a grid draws is decided here, not in the generator: key on the cells themselves
                       **({"cells": grid_cells(count, grid)} if grid else {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_render(
    seed: int,
    count: int,
    split: synth.Split,
    cache_dir: Path,
    label: str | None = None,
    size: tuple[int, int] | None = None,
    desc: str = "",
    grid: int = 0,
) -> list[Rendered]:
    """:func:`render`, stored in ``cache_dir`` (git-ignored) as one npz of JPEG bytes and infos.

    The file name hashes everything the pixels depend on (:mod:`training.synth.assets`), so a cache
    written by other code, fonts, photos or libraries is never reused.
    """
    what = f"grid{grid}" if grid else label or "all"
    name = f"frames-{split.name}-s{seed}-n{count}-{what}-{_key(seed, count, split, label, size, grid)}.npz"
    path = cache_dir / name
    cached = load_frames(path)
    if cached is not None:
        return cached
    frames = render(seed, count, split, label=label, size=size, desc=desc, grid=grid)
    save_frames(path, frames)
    return frames


def load_frames(path: Path) -> list[Rendered] | None:
    """Frames stored by :func:`save_frames` (None when ``path`` does not exist)."""
    if not path.exists():
        return None
    with np.load(path) as z:
        blob, offsets = z["blob"], z["offsets"]
        infos = json.loads(str(z["infos"]))
    return [Rendered(bytes(blob[offsets[i]:offsets[i + 1]]), int(inf["width"]), int(inf["height"]), inf)
            for i, inf in enumerate(infos)]


def save_frames(path: Path, frames: Sequence[Rendered]) -> None:
    """One npz of the frames' JPEG bytes and infos (written to a temporary file, then renamed)."""
    offsets = np.cumsum([0] + [len(f.data) for f in frames]).astype(np.int64)
    blob = np.frombuffer(b"".join(f.data for f in frames), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # two runs may write the same cache at once
    np.savez(tmp, blob=blob, offsets=offsets, infos=np.asarray(json.dumps([f.info for f in frames])))
    tmp.replace(path)


def reader_meta(clf: Classifier) -> Any:
    """The reader stage's metadata of a detector (None for a gate alone)."""
    return getattr(clf.meta, "reader", None) or (clf.meta.model_extra or {}).get("reader")


def is_gate_only(clf: Classifier) -> bool:
    """Whether ``classify`` is the gate CNN alone (no reader stage in the model's metadata)."""
    return getattr(clf, "reader", None) is None and not reader_meta(clf)
