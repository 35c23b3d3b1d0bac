"""Build (and cache) preprocessed tensors from synthetic frames and real samples (no torch).

Every frame goes through :func:`services.inference.vision.preprocess_bytes` on
its full-frame JPEG, exactly like the inference worker. The ``(3, H, W)``
float tensors are stored losslessly as the uint8 pixels they were made from
(:func:`to_uint8` / :func:`to_float` invert the normalisation exactly).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from services.inference.vision import MODEL_LABELS, ModelMeta, preprocess_bytes
from training import kernels, synth
from training.config import CACHE_DIR, SAMPLES_DIR, preprocess_meta
from training.synth.assets import fingerprint_digest

log = logging.getLogger("owc.training")

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


@dataclass
class Arrays:
    x: npt.NDArray[np.uint8]  # (N, 3, H, W) pixels as the model sees them (before normalisation)
    y: npt.NDArray[np.int64]  # (N,) index into MODEL_LABELS
    kinds: list[str]

    def __len__(self) -> int:
        return int(self.y.shape[0])


def to_uint8(t: npt.NDArray[np.float32], meta: ModelMeta) -> npt.NDArray[np.uint8]:
    n = meta.normalize
    mean = np.asarray(n.mean, np.float32)[:, None, None]
    std = np.asarray(n.std, np.float32)[:, None, None]
    px = (t * std + mean) / np.float32(n.scale)
    out: npt.NDArray[np.uint8] = np.clip(np.rint(px), 0, 255).astype(np.uint8)
    return out


def to_float(u: npt.NDArray[np.uint8], meta: ModelMeta) -> npt.NDArray[np.float32]:
    """Exactly :func:`services.inference.vision.normalise`'s arithmetic on stored pixels (any leading dims)."""
    n = meta.normalize
    mean = (np.asarray(n.mean, np.float32) / np.float32(n.scale))[:, None, None]
    inv = (np.float32(n.scale) / np.asarray(n.std, np.float32))[:, None, None]
    out: npt.NDArray[np.float32] = ((u.astype(np.float32) - mean) * inv).astype(np.float32)
    return out


def _one(job: tuple[int, int, str, bool]) -> tuple[npt.NDArray[np.uint8], int, str]:
    seed, index, split_name, hard = job
    meta = preprocess_meta()
    render = synth.render_hard_sample if hard else synth.render_sample
    with kernels.rendering():  # the frame and its model input: the same bytes on every CPU
        data, w, h, info = render(seed, index, synth.SPLITS[split_name])
        t = preprocess_bytes(data, meta, w, h)
    u = to_uint8(t, meta)
    return u, MODEL_LABELS.index(info["label"]), str(info["kind"])


def generate(
    seed: int, count: int, split: synth.Split, workers: int | None = None, desc: str = "", hard: bool = False
) -> Arrays:
    """``count`` frames of ``split``: :func:`synth.render_sample`, or :func:`synth.render_hard_sample` if ``hard``."""
    jobs = [(seed, i, split.name, hard) for i in range(count)]
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    xs: list[npt.NDArray[np.uint8]] = []
    ys: list[int] = []
    kinds: list[str] = []
    progress = _progress(total=count, desc=desc or f"generate {split.name} seed={seed}")
    if workers == 1:
        results: Iterable[tuple[npt.NDArray[np.uint8], int, str]] = map(_one, jobs)
        for u, y, k in results:
            xs.append(u)
            ys.append(y)
            kinds.append(k)
            progress.update(1)
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            for u, y, k in pool.imap(_one, jobs, chunksize=32):  # ordered: same result for any worker count
                xs.append(u)
                ys.append(y)
                kinds.append(k)
                progress.update(1)
    progress.close()
    return Arrays(np.stack(xs), np.asarray(ys, np.int64), kinds)


class Progress(Protocol):
    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, unit: str = "frame") -> Progress:
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()
    bar: Progress = tqdm(total=total, desc=desc, unit=unit, mininterval=2.0)
    return bar


def preprocess_digest() -> str:
    """sha256 of ``services/inference/vision.py``, where ``preprocess_bytes`` (decode, crop, resize) lives."""
    import services.inference.vision as vision

    return hashlib.sha256(Path(vision.__file__).read_bytes()).hexdigest()[:16]


def cache_key(seed: int, count: int, split: synth.Split, hard: bool = False) -> str:
    meta = preprocess_meta()
    extra = {"hard": synth.HARD_VERSION} if hard else {}
    blob = json.dumps(
        {
            **extra,
            "gen": synth.GENERATOR_VERSION,
            "seed": seed,
            "count": count,
            "split": split.name,
            "natural": synth.natural_available(split),
            "fonts": synth.fonts_in_use(split),
            "render": fingerprint_digest(split),  # code, font and photo files, libraries
            "roi": meta.roi.model_dump(),
            "input": meta.input.model_dump(),
            # the arrays are the inference worker's preprocessing of the frames: key on its code too
            "preprocess": preprocess_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(
    seed: int, count: int, split: synth.Split, cache_dir: Path = CACHE_DIR, desc: str = "", hard: bool = False
) -> Arrays:
    """Generated arrays, from ``cache_dir`` when an identical set was built before."""
    name = f"{'hard-' if hard else ''}{split.name}"
    path = cache_dir / f"{name}-s{seed}-n{count}-{cache_key(seed, count, split, hard)}.npz"
    if path.exists():
        with np.load(path) as z:
            return Arrays(z["x"], z["y"], [str(k) for k in z["kinds"]])
    arr = generate(seed, count, split, desc=desc, hard=hard)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # two runs may write the same cache at once
    np.savez(tmp, x=arr.x, y=arr.y, kinds=np.asarray(arr.kinds))
    tmp.replace(path)
    return arr


# ---------------------------------------------------------------- real samples


def _is_eval_sample(path: Path) -> bool:
    """Deterministic 80/20 split of real samples by file name."""
    return hashlib.sha256(path.name.encode()).digest()[0] < 52


def real_sample_files(root: Path = SAMPLES_DIR) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for label in MODEL_LABELS:
        d = root / label
        if d.is_dir():
            out[label] = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    return out


def load_real(root: Path = SAMPLES_DIR, part: str = "train") -> Arrays | None:
    """Real labelled frames under ``root/<label>/``: ``part`` is "train" (80%) or "eval" (20%)."""
    meta = preprocess_meta()
    xs: list[npt.NDArray[np.uint8]] = []
    ys: list[int] = []
    for label, files in real_sample_files(root).items():
        for p in files:
            if _is_eval_sample(p) != (part == "eval"):
                continue
            data = p.read_bytes()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("skipping unreadable sample %s", p)
                continue
            h, w = img.shape[:2]
            xs.append(to_uint8(preprocess_bytes(data, meta, w, h), meta))
            ys.append(MODEL_LABELS.index(label))
    if not xs:
        return None
    return Arrays(np.stack(xs), np.asarray(ys, np.int64), ["real"] * len(ys))


def digest(arr: Arrays) -> str:
    """sha256 (16 hex digits) of the pixels and labels of ``arr``: what the fit saw, whatever rendered it.

    Recorded in the model's JSON (``training.data``) so that two trainings that disagree say whether the
    data already differed (rendering: OpenCV dispatches some kernels on the CPU) or only the fit did.
    """
    h = hashlib.sha256()
    h.update(repr((arr.x.shape, arr.x.dtype.str, arr.y.dtype.str)).encode())
    h.update(np.ascontiguousarray(arr.x).tobytes())
    h.update(np.ascontiguousarray(arr.y).tobytes())
    return h.hexdigest()[:16]


def concat(parts: list[Arrays]) -> Arrays:
    return Arrays(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        [k for p in parts for k in p.kinds],
    )
