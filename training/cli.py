"""``owc collect``: turn your own recordings into labelled samples under ``data/samples/<label>/``.

Sources: folders of screenshots, image files, video files (sampled every
``--every`` seconds) and the detection frames the running stack keeps in
Redis (``--from-redis``). Labels come from, in order of precedence:

- ``--label LABEL``: everything from these sources is LABEL;
- ``--ranges``: for videos, ``victory=12:31-12:36,defeat=40:02-40:07`` — frames
  inside a range get its label, frames outside get ``none`` (``--outside skip``
  to drop them);
- otherwise the current model: predictions with confidence ≥ ``--threshold``
  go to their label, the rest to ``unsure/`` for you to sort by hand.

Needs OpenCV and onnxruntime only (no torch). ``python -m training.train``
mixes ``data/samples/<label>/`` into training; ``unsure/`` is ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from services.common.cli.cliargs import add_config_args, fail, load_from_args

log = logging.getLogger("owc.collect")

LABELS = ("none", "victory", "defeat", "draw")
UNSURE = "unsure"
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".flv", ".webm", ".ts", ".m4v"}
DEFAULT_OUT = Path("data/samples")


@dataclass(frozen=True)
class Frame:
    name: str  # unique, stable file stem
    data: bytes  # encoded image (JPEG/PNG)
    t: float | None = None  # seconds into a video
    label: str | None = None  # known from the event log (--from-redis)


@dataclass(frozen=True)
class Range:
    label: str
    start: float
    end: float


_TIME_RE = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)$")


def parse_time(text: str) -> float:
    """``SS``, ``MM:SS`` or ``HH:MM:SS`` (seconds may have decimals) -> seconds."""
    m = _TIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"bad time {text!r}: use SS, MM:SS or HH:MM:SS")
    parts = [p for p in m.groups() if p is not None]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + float(p)
    return seconds


def parse_ranges(spec: str) -> list[Range]:
    """``victory=12:31-12:36,defeat=1:02:03-1:02:09`` -> ranges (end inclusive)."""
    out: list[Range] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        label, sep, span = item.partition("=")
        label = label.strip().lower()
        if not sep or label not in LABELS:
            raise ValueError(f"bad range {item!r}: use LABEL=START-END with LABEL one of {', '.join(LABELS)}")
        start_s, dash, end_s = span.partition("-")
        if not dash:
            raise ValueError(f"bad range {item!r}: use LABEL=START-END")
        start, end = parse_time(start_s), parse_time(end_s)
        if end < start:
            raise ValueError(f"bad range {item!r}: end before start")
        out.append(Range(label, start, end))
    if not out:
        raise ValueError("--ranges is empty")
    return out


def label_for_time(t: float, ranges: list[Range]) -> str | None:
    for r in ranges:
        if r.start <= t <= r.end:
            return r.label
    return None


def _slug(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:40] or "src"
    return f"{stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:6]}"


def iter_images(paths: list[Path]) -> Iterator[Frame]:
    for p in paths:
        yield Frame(_slug(p), p.read_bytes())


def iter_video(path: Path, every: float) -> Iterator[Frame]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"cannot open video {str(path)!r}")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        step = max(1, round(every * fps))
        slug = _slug(path)
        index = 0
        while True:
            ok = cap.grab()
            if not ok:
                break
            if index % step == 0:
                ok, img = cap.retrieve()
                if ok and img is not None:
                    t = index / fps
                    enc_ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
                    if enc_ok:
                        yield Frame(f"{slug}-t{int(t * 1000):09d}", enc.tobytes(), t)
            index += 1
    finally:
        cap.release()


def labels_from_events(events: list[Any]) -> dict[int, str]:
    """Frame seq -> label, from what the event log says happened to that frame.

    An automatic detection labels its frame with the outcome; a detection the
    streamer undid labels it ``none`` (a false positive is the most useful
    negative there is); a near miss counted by hand (``adjusted`` with a
    ``frame_seq``) labels it with the outcome.
    """
    by_id = {e.id: e for e in events}
    out: dict[int, str] = {}
    for e in events:
        if e.frame_seq is None and e.type != "undone":
            continue
        if e.type == "detected" or (e.type == "adjusted" and e.delta > 0):
            out[e.frame_seq] = e.outcome
        elif e.type == "undone":
            undone = by_id.get(e.undoes)
            if undone is not None and undone.type == "detected" and undone.frame_seq is not None:
                out[undone.frame_seq] = "none"
    return out


def iter_redis(settings: Any, channel: str) -> Iterator[Frame]:
    from services.common.contracts.keys import Keys
    from services.common.contracts.messages import Event, MessageError
    from services.common.infra.redisio import connect

    client = connect(settings)
    keys = Keys(settings.redis.prefix)
    events = []
    raw = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.events(channel)))
    for eid, fields in raw:
        try:
            events.append(Event.from_fields(fields, eid))
        except MessageError:  # written by another version: its frame falls back to the detector
            continue
    known = labels_from_events(events)
    for key in client.scan_iter(match=keys.detframe_pattern(channel), count=200):
        data = client.get(key)
        seq = keys.detframe_seq(channel, key)
        if isinstance(data, bytes) and data and seq is not None:  # (a key not named by a seq: not capture's)
            yield Frame(f"redis-{channel}-{seq}", data, label=known.get(seq))


class AutoLabeller:
    """The current detector (both stages, as the workers run it) as a labeller."""

    def __init__(self, model: Path, threshold: float) -> None:
        from services.inference.classifier import Classifier

        self.classifier = Classifier(model, intra_op_threads=1, warmup_batch=1)
        self.threshold = threshold

    def __call__(self, data: bytes) -> tuple[str, float]:
        from services.inference.vision import decode

        height, width = decode(data).shape[:2]
        pred = self.classifier.classify([(data, width, height)])[0]
        return (pred.label if pred.confidence >= self.threshold else UNSURE), pred.confidence


def _expand(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    images: list[Path] = []
    videos: list[Path] = []
    for p in inputs:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.suffix.lower() in IMAGE_EXTS:
                    images.append(f)
                elif f.suffix.lower() in VIDEO_EXTS:
                    videos.append(f)
        elif p.is_file():
            (videos if p.suffix.lower() in VIDEO_EXTS else images).append(p)
        else:
            fail(f"no such file or folder: {str(p)!r}")
    return images, videos


def run_collect(args: argparse.Namespace) -> int:
    loaded = load_from_args(args)
    settings = loaded.settings
    inputs = [Path(p) for p in args.inputs]
    if not inputs and not args.from_redis:
        fail("give screenshots/videos/folders to collect from, or --from-redis")
    if not 0 < args.threshold <= 1:
        fail("--threshold must be in (0, 1]")
    if args.label and args.label not in LABELS:
        fail(f"--label must be one of {', '.join(LABELS)}")
    try:
        ranges = parse_ranges(args.ranges) if args.ranges else None
    except ValueError as exc:
        fail(str(exc))
        return 2
    images, videos = _expand(inputs)
    if ranges and images and not args.label:
        fail("--ranges applies to videos; label screenshots with --label or let the model label them")
    labeller: AutoLabeller | None = None
    if not args.label and (images or args.from_redis or (videos and not ranges)):
        model = Path(args.model) if args.model else settings.inference.model
        try:
            labeller = AutoLabeller(model, args.threshold)
        except Exception as exc:  # a missing/broken model is a user error here
            fail(f"cannot load the model for auto-labelling ({exc}); use --label or --ranges")

    out: Path = args.out
    counts: dict[str, int] = {}

    def emit(frame: Frame, label: str | None) -> None:
        if label is None:
            if labeller is None:
                return
            label, _conf = labeller(frame.data)
        ext = ".png" if frame.data[:4] == b"\x89PNG" else ".jpg"
        target = out / label / f"{frame.name}{ext}"
        if any((out / lab / f"{frame.name}{ext}").exists() for lab in (*LABELS, UNSURE)):
            counts["skipped (already collected)"] = counts.get("skipped (already collected)", 0) + 1
            return
        if not args.dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(frame.data)
        counts[label] = counts.get(label, 0) + 1

    try:
        for frame in iter_images(images):
            emit(frame, args.label)
        for video in videos:
            for frame in iter_video(video, args.every):
                if args.label:
                    emit(frame, args.label)
                elif ranges is not None:
                    assert frame.t is not None
                    lab = label_for_time(frame.t, ranges)
                    if lab is None and args.outside == "none":
                        lab = "none"
                    if lab is not None:
                        emit(frame, lab)
                else:
                    emit(frame, None)
        if args.from_redis:
            for frame in iter_redis(settings, args.channel):
                emit(frame, args.label or frame.label)
    except OSError as exc:
        fail(str(exc))
    total = sum(v for k, v in counts.items() if not k.startswith("skipped"))
    verb = "would write" if args.dry_run else "wrote"
    print(f"{verb} {total} frames under {out}/: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"))
    if counts.get(UNSURE):
        print(f"sort {out / UNSURE}/ by hand: move each file into {out}/<none|victory|defeat|draw>/")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "collect",
        help="turn your recordings/screenshots into labelled training samples (data/samples/<label>/)",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="PATH", help="screenshots, videos or folders of them")
    p.add_argument("--from-redis", action="store_true", help="also take the detection frames the stack kept")
    p.add_argument("--channel", default="default", help="channel for --from-redis (default: default)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="samples folder (default: data/samples)")
    p.add_argument("--label", help="label everything as this: none, victory, defeat or draw")
    p.add_argument("--ranges", help="video time ranges, e.g. victory=12:31-12:36,defeat=40:02-40:07")
    p.add_argument("--outside", choices=["none", "skip"], default="none",
                   help="with --ranges: frames outside every range are 'none' (default) or skipped")
    p.add_argument("--every", type=float, default=0.5, help="video: seconds between sampled frames (default 0.5)")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="auto-labelling: below this confidence a frame goes to unsure/ (default 0.9)")
    p.add_argument("--model", help="model for auto-labelling (default: inference.model)")
    p.add_argument("--dry-run", action="store_true", help="count only, write nothing")
    add_config_args(p)
    p.set_defaults(handler=run_collect)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="owc")
    register(parser.add_subparsers())
    ns = parser.parse_args()
    sys.exit(ns.handler(ns))
