"""What a replay plays: the path's kind, its frames in order at ``fps``, its fingerprint.

* Folder: every ``.png``/``.jpg``/``.jpeg`` file, sorted by name, is one frame.
* Video: anything ``cv2.VideoCapture`` opens, sampled at ``fps`` of video time
  (frame ``k`` is the first video frame at or after ``k/fps`` s).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from services.capture.metrics import CaptureMetrics

if TYPE_CHECKING:  # OpenCV and numpy are imported where a picture is decoded: a folder of JPEGs
    import numpy as np  # already as captured is replayed without them (services/capture/jpeg.py)
    import numpy.typing as npt

    Image: TypeAlias = npt.NDArray[np.uint8]
    # ``load(early_s)``: the sample's picture, or the one ``early_s`` seconds of replay time before it
    # (a burst); ``None`` when a video ends there
    Load: TypeAlias = Callable[[float], Image | None]

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
    """The folder's images sorted by name (a looping replay lists them once a pass: ``scandir`` knows which
    entries are files without a ``stat`` each, and names sort faster than paths, in the same order)."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file()]
    return [folder / name for name in sorted(names, key=os.path.normcase)]


def check_replay_path(path: Path) -> str:
    """Describe the replay (for the start log line) or raise :class:`ReplayError`."""
    if not path.exists():
        raise ReplayError(f"replay path {str(path)!r} does not exist")
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise ReplayError(f"replay folder {str(path)!r} has no .png/.jpg images")
        return f"folder {path} ({len(images)} images)"
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ReplayError(f"replay file {str(path)!r} is neither a folder nor a video OpenCV can open")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        native = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return f"video {path} ({count} frames at {native:g} fps)"


def _not_read(_early_s: float) -> Image | None:
    """A kept image's ``load``: never called (the caller has what it made of the image)."""
    return None


def iter_frames(
    path: Path, fps: float, metrics: CaptureMetrics | None = None, start: int = 0
) -> Iterator[tuple[int, Image]]:
    """One pass over the replay as ``(index, BGR image)`` at ``fps`` of replay time.

    ``index`` is the frame's position in the pass (folder: the file's position,
    video: the replay frame number); ``start`` skips the frames before it
    (resuming an interrupted replay).
    """
    for index, load in iter_samples(path, fps, metrics, start):
        image = load(0.0)
        if image is None:
            return
        yield index, image


def iter_samples(
    path: Path, fps: float, metrics: CaptureMetrics | None = None, start: int = 0,
    known: Callable[[int], bool] | None = None,
) -> Iterator[tuple[int, Load]]:
    """:func:`iter_frames`, with each picture taken when asked for, at the replay time asked for.

    A folder's images are read ahead (``early_s`` does not matter: there is no
    picture between two images). A video is decoded when ``load`` is called:
    ``load(0)`` is frame ``index`` (the first video frame at or after
    ``index/fps`` s), ``load(e)`` the first video frame at or after
    ``index/fps - e`` s that comes after the previous sample's: the frame on
    screen at the replay time a burst takes it. Call ``load`` once per
    sample, before the next one.

    ``known(index)`` true: a folder's image is not read (the caller kept what it made of it on an
    earlier pass); its ``load`` returns ``None``.
    """
    if path.is_dir():
        for index, file in enumerate(list_images(path)):
            if index < start:
                continue
            if known is not None and known(index):
                yield index, _not_read
                continue
            import cv2  # a picture to decode (once imported, this is a dictionary look-up)

            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("replay: cannot read image %s, skipping it", file)
                if metrics:
                    metrics.errors.labels("replay").inc()
                continue
            picture = cast("Image", image)
            yield index, lambda _early_s, picture=picture: picture  # type: ignore[misc]
        return
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ReplayError(f"replay file {str(path)!r} cannot be opened as a video")
    try:
        native = float(cap.get(cv2.CAP_PROP_FPS))
        cursor = _VideoCursor(cap, native)
        k = 0  # replay frame index
        while True:
            if k < start:
                if not cursor.skip_to(k / fps) or not cap.grab():  # skipped frames are not decoded
                    return
                cursor.position += 1
                k += 1
                continue
            yield k, cursor.loader(k / fps)
            if not cursor.ok:
                return
            k += 1
    finally:
        cap.release()


class _VideoCursor:
    """Where a video stands; grabs (without decoding) up to a replay time, reads the frame there."""

    def __init__(self, cap: Any, native: float) -> None:
        self.cap, self.native = cap, native
        self.position = 0  # index of the next video frame
        self.ok = True

    def skip_to(self, at_s: float) -> bool:
        # without a usable native rate, every video frame is one replay frame
        while self.native > 0 and self.position / self.native + 1e-9 < at_s:
            if not self.cap.grab():
                return False
            self.position += 1
        return True

    def loader(self, at_s: float) -> Load:
        def load(early_s: float) -> Image | None:
            ok = self.skip_to(max(0.0, at_s - max(0.0, early_s)))
            image = None
            if ok:
                ok, image = self.cap.read()
                self.position += 1
            self.ok = bool(ok)
            return cast("Image", image) if ok else None

        return load


def fingerprint(path: Path) -> str:
    """Changes when the replay's content changes (names and sizes of the files)."""
    digest = hashlib.sha1(usedforsecurity=False)
    files = list_images(path) if path.is_dir() else [path]
    for file in files:
        st = file.stat()
        digest.update(f"{file.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
