"""What a replay plays: the path's kind, its frames in order at ``fps``, its fingerprint.

* Folder: every ``.png``/``.jpg``/``.jpeg`` file, sorted by name, is one frame.
* Video: anything ``cv2.VideoCapture`` opens, sampled at ``fps`` of video time
  (frame ``k`` is the first video frame at or after ``k/fps`` s).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from services.capture.metrics import CaptureMetrics

log = logging.getLogger("owc.capture.replay")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ReplayError(RuntimeError):
    """A replay path that cannot be played, phrased for the user."""


def parse_replay_source(source: str) -> Path | None:
    """``replay:PATH`` -> PATH; ``obs`` -> None; anything else is an error."""
    if source == "obs":
        return None
    if source.startswith("replay:") and len(source) > len("replay:"):
        return Path(source[len("replay:") :]).expanduser()
    raise ReplayError(f"capture.source must be `obs` or `replay:PATH`, got {source!r}")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def check_replay_path(path: Path) -> str:
    """Describe the replay (for the start log line) or raise :class:`ReplayError`."""
    import cv2

    if not path.exists():
        raise ReplayError(f"replay path {str(path)!r} does not exist")
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise ReplayError(f"replay folder {str(path)!r} has no .png/.jpg images")
        return f"folder {path} ({len(images)} images)"
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ReplayError(f"replay file {str(path)!r} is neither a folder nor a video OpenCV can open")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        native = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return f"video {path} ({count} frames at {native:g} fps)"


def iter_frames(
    path: Path, fps: float, metrics: CaptureMetrics | None = None, start: int = 0
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """One pass over the replay as ``(index, BGR image)`` at ``fps`` of replay time.

    ``index`` is the frame's position in the pass (folder: the file's position,
    video: the replay frame number); ``start`` skips the frames before it
    (resuming an interrupted replay).
    """
    import cv2

    if path.is_dir():
        for index, file in enumerate(list_images(path)):
            if index < start:
                continue
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("replay: cannot read image %s, skipping it", file)
                if metrics:
                    metrics.errors.labels("replay").inc()
                continue
            yield index, cast("npt.NDArray[np.uint8]", image)
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ReplayError(f"replay file {str(path)!r} cannot be opened as a video")
    try:
        native = float(cap.get(cv2.CAP_PROP_FPS))
        position = 0  # video frame index
        k = 0  # replay frame index
        while True:
            # without a usable native rate, every video frame is one replay frame
            wanted = native <= 0 or position / native + 1e-9 >= k / fps
            if wanted and k >= start:
                ok, image = cap.read()
                if not ok:
                    return
                yield k, cast("npt.NDArray[np.uint8]", image)
            elif not cap.grab():  # skipped frames are not decoded
                return
            if wanted:
                k += 1
            position += 1
    finally:
        cap.release()


def fingerprint(path: Path) -> str:
    """Changes when the replay's content changes (names and sizes of the files)."""
    digest = hashlib.sha1(usedforsecurity=False)
    files = list_images(path) if path.is_dir() else [path]
    for file in files:
        st = file.stat()
        digest.update(f"{file.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
