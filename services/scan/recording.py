"""Recordings as frames at the capture interval: a video file, an animated GIF or a folder of frames.

:func:`open_recording` looks at what the path is (a folder; a file starting
with ``GIF8``; anything else is handed to OpenCV's FFmpeg backend) and returns
a :class:`Recording`: what it is, its content hash (the identity ``--import``
keys results by) and :meth:`Recording.samples`, which yields one
``(position ms, BGR frame)`` per interval of recording time — the frame on
screen at that moment, as a capture every ``interval_ms`` would have seen it.

Every failure to read is a :class:`RecordingError` with one sentence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from services.common.infra.files import sha256_file
from services.inference import vision

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
GIF_DEFAULT_DELAY_MS = 100  # browsers show a GIF frame without a delay for 0.1 s
Image = npt.NDArray[np.uint8]


class RecordingError(ValueError):
    """The recording is missing, unreadable or not a recording (one sentence)."""


@dataclass
class Sample:
    at_ms: int
    image: Image | None  # None: this frame could not be decoded (``error`` says why)
    error: str = ""


@dataclass
class Recording:
    path: Path
    kind: str  # video | gif | folder
    sha256: str
    duration_ms: int  # best estimate (0: unknown)
    width: int = 0
    height: int = 0
    frames: int = 0  # source frames (video: from the container, may be an estimate)
    fps: float = 0.0
    frame_interval_ms: int = 0  # folder: the time each frame stands for
    detail: dict[str, Any] = field(default_factory=dict)

    def expected_samples(self, interval_ms: int) -> int:
        return self.duration_ms // interval_ms + 1 if self.duration_ms else 0

    def samples(self, interval_ms: int) -> Iterator[Sample]:
        if self.kind == "folder":
            return _folder_samples(self, interval_ms)
        if self.kind == "gif":
            return _gif_samples(self, interval_ms)
        return _video_samples(self, interval_ms)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.path.name, "kind": self.kind, "sha256": self.sha256,
                "duration_ms": self.duration_ms, "width": self.width, "height": self.height,
                "frames": self.frames, "fps": round(self.fps, 3)}


def open_recording(path: Path, frame_interval_ms: int = 250) -> Recording:
    """What ``path`` is, its hash and size; raises :class:`RecordingError`."""
    try:
        if path.is_dir():
            return _open_folder(path, frame_interval_ms)
        with path.open("rb") as f:
            head = f.read(16)
        if not head:
            raise RecordingError(f"{path} is empty")
        sha = sha256_file(path)
    except FileNotFoundError:
        raise RecordingError(f"{path} does not exist") from None
    except PermissionError:
        raise RecordingError(f"{path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise RecordingError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if head.startswith(b"GIF8"):
        return _open_gif(path, sha)
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"BM")):
        raise RecordingError(f"{path} is a single image, not a recording: use `owc predict` for images, "
                             "or put frames in a folder")
    return _open_video(path, sha)


# ------------------------------------------------------------------ folder


def _open_folder(path: Path, frame_interval_ms: int) -> Recording:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise RecordingError(f"{path} holds no frames ({', '.join(FRAME_SUFFIXES)} files)")
    h = hashlib.sha256()
    for file in files:  # the frames' names and bytes, in order: the folder's identity
        h.update(file.name.encode() + b"\0")
        h.update(sha256_file(file).encode())
    try:
        first = vision.check_size(files[0].read_bytes())
    except (OSError, vision.FrameDecodeError):
        first = (0, 0)  # the frame itself becomes an error sample
    return Recording(path, "folder", h.hexdigest(), (len(files) - 1) * frame_interval_ms, first[0], first[1],
                     len(files), 1000 / frame_interval_ms, frame_interval_ms, {"files": files})


def _folder_samples(rec: Recording, interval_ms: int) -> Iterator[Sample]:
    files: list[Path] = rec.detail["files"]
    next_at = 0
    for i, file in enumerate(files):
        at = i * rec.frame_interval_ms
        if at < next_at:
            continue
        next_at = _next_sample(next_at, at, interval_ms)
        try:
            yield Sample(at, vision.decode(file.read_bytes()))
        except (OSError, vision.FrameDecodeError) as exc:
            yield Sample(at, None, f"{file.name}: {exc}")


def _next_sample(next_at: int, at: int, interval_ms: int) -> int:
    """The first sample time after ``at`` on the grid 0, interval, 2·interval, …"""
    while next_at <= at:
        next_at += interval_ms
    return next_at


# ------------------------------------------------------------------ GIF


def _open_gif(path: Path, sha: str) -> Recording:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(path, formats=("GIF",)) as im:
            width, height = im.size
            if width * height > vision.MAX_PIXELS:
                raise RecordingError(f"{path}: {width}×{height} frames are too large")
            count = int(getattr(im, "n_frames", 1))
            durations = []
            for i in range(count):
                im.seek(i)
                durations.append(int(im.info.get("duration") or GIF_DEFAULT_DELAY_MS))
    except PILImage.DecompressionBombError:
        raise RecordingError(f"{path}: the GIF's frames are too large") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError) as exc:
        raise RecordingError(f"{path} is not a readable GIF ({exc})") from None
    total = sum(durations)
    return Recording(path, "gif", sha, max(0, total - durations[-1]) if durations else 0, width, height,
                     count, 1000 * count / total if total else 0.0, detail={"durations": durations})


def _gif_samples(rec: Recording, interval_ms: int) -> Iterator[Sample]:
    from PIL import Image as PILImage

    durations: list[int] = rec.detail["durations"]
    with PILImage.open(rec.path, formats=("GIF",)) as im:
        at = 0
        next_at = 0
        for i, duration in enumerate(durations):
            shown_until = at + duration
            if next_at < shown_until or i == len(durations) - 1:
                try:
                    im.seek(i)
                    rgb = np.asarray(im.convert("RGB"))
                except (OSError, ValueError, EOFError) as exc:
                    yield Sample(max(at, next_at), None, f"GIF frame {i}: {exc}")
                else:
                    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
                    while next_at < shown_until:  # a long frame is on screen for several samples
                        yield Sample(next_at, bgr)
                        next_at += interval_ms
            at = shown_until


# ------------------------------------------------------------------ video


def _open_video(path: Path, sha: str) -> Recording:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise RecordingError(f"{path} is not a video OpenCV/FFmpeg can read (corrupt, or an unknown format)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        ok = cap.grab()
    finally:
        cap.release()
    if not ok:
        raise RecordingError(f"{path}: no frame could be decoded (corrupt or empty video)")
    if width * height > vision.MAX_PIXELS:
        raise RecordingError(f"{path}: {width}×{height} frames are too large (at most 4096×4096)")
    duration = round(1000 * (frames - 1) / fps) if fps > 0 and frames > 0 else 0
    return Recording(path, "video", sha, duration, width, height, max(0, frames), fps)


def _video_samples(rec: Recording, interval_ms: int) -> Iterator[Sample]:
    import cv2

    cap = cv2.VideoCapture(str(rec.path), cv2.CAP_FFMPEG)
    try:
        index = 0
        next_at = 0
        while cap.grab():  # decode every frame; convert only the sampled ones
            pos = cap.get(cv2.CAP_PROP_POS_MSEC)
            at = round(pos) if pos > 0 or index == 0 else round(1000 * index / (rec.fps or 30.0))
            index += 1
            if at < next_at:
                continue
            next_at = _next_sample(next_at, at, interval_ms)
            ok, image = cap.retrieve()
            if not ok or image is None:
                yield Sample(at, None, f"video frame {index - 1} could not be converted")
                continue
            yield Sample(at, cast(Image, image))
    finally:
        cap.release()
