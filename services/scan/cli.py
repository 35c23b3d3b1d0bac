"""``owc scan RECORDING``: the detector and the counting rules over a video, a GIF or a folder of frames."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from services.common.cli.cliargs import add_command, channel_name, fail, load_from_args, redis_for


def _positive_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds (an integer), got {text!r}") from None
    if not 20 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"{value} ms is outside 20..60000")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "scan", _run_scan, help="count the results in a recording (video, GIF or folder of frames)")
    p.add_argument("recording", metavar="RECORDING",
                   help="a video file (anything FFmpeg reads: mp4, mkv, …), an animated GIF, or a folder of "
                   "frames (.jpg/.png/.bmp, taken in name order)")
    p.add_argument("--interval", type=_positive_ms, metavar="MS",
                   help="look at one frame per MS of recording time (default: capture.interval_ms, 250)")
    p.add_argument("--frame-interval", type=_positive_ms, metavar="MS",
                   help="a folder's frames are this far apart in time (default: the interval)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON document instead of the timeline")
    out.add_argument("--csv", action="store_true", help="print CSV (one row per result and near miss)")
    p.add_argument("--import", dest="import_session", metavar="SESSION",
                   help="add the results to the channel's history through the state service: SESSION is "
                   "`current`, `new` or the id of the channel's current session. Importing the same "
                   "recording again adds nothing")
    p.add_argument("--channel", type=channel_name, default="default",
                   help="the channel of --import (default: default)")
    p.add_argument("--model", metavar="PATH", help="ONNX model (default: inference.model)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _run_scan(args: argparse.Namespace) -> int:
    """Run the real detector and the real counting rules over a recording, as fast as the CPU allows,
    looking at one frame per capture interval of recording time (each frame made the way the live capture
    would get it: capture.width × capture.height, capture.image_format, capture.quality). Prints each
    result with its time in the recording (hh:mm:ss.mmm) and its stage scores, the near misses and the
    frames per second achieved. Exit status 2 for a recording that cannot be read. See docs/scan.md.
    """
    from services.common.contracts.scanimport import ScanImport
    from services.inference.classifier import Classifier, ClassifierError
    from services.scan import output
    from services.scan.recording import RecordingError, open_recording
    from services.scan.scanner import Scanner
    from services.state.rules import Rules

    loaded = load_from_args(args, {"inference.model": args.model})
    settings = loaded.settings
    if settings.log.level != "DEBUG":
        _quiet_decoders()
    interval = args.interval or settings.capture.interval_ms
    try:
        recording = open_recording(Path(args.recording), args.frame_interval or interval)
    except RecordingError as exc:
        fail(f"scan: {exc}")
    # before the scan, which may take minutes: a Redis that is not there fails now (exit 1)
    connection = redis_for(settings) if args.import_session else None
    try:
        classifier = Classifier.from_settings(settings.inference)
    except ClassifierError as exc:
        fail(f"scan: {exc}")
    scanner = Scanner(classifier, Rules.from_settings(settings.state), settings.capture)
    bar = _progress(recording.expected_samples(interval), disabled=args.no_progress)
    try:
        report = scanner.scan(recording, interval, progress=lambda n, _at: bar.update(1))
    except RecordingError as exc:
        bar.close()
        fail(f"scan: {exc}")
    bar.close()
    imported: dict[str, Any] | None = None
    if connection is not None:
        from redis import RedisError

        from services.scan.importer import ImportFailed, send

        batch = ScanImport(args.import_session, recording.path.name, recording.sha256,
                           tuple(r.result() for r in report.results))
        client, keys = connection
        try:
            imported = send(client, keys, args.channel, batch)
        except ImportFailed as exc:
            fail(f"scan: {exc}", 1)
        except RedisError as exc:
            fail(f"scan: Redis failed during the import ({exc}); run the same command again: it adds nothing twice", 1)
        finally:
            client.close()
    if args.json:
        print(output.to_json(report, imported))
    elif args.csv:
        sys.stdout.write(output.to_csv(report))
    else:
        print(output.timeline(report, imported))
    return 0


def _progress(total: int, *, disabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc="scan", file=sys.stderr, disable=disabled,
                mininterval=0.5, dynamic_ncols=True)


def _quiet_decoders() -> None:
    """FFmpeg and OpenCV print their own warnings ("moov atom not found") straight to stderr: a bad
    recording is one line of ours instead. FFmpeg reads the variable when OpenCV first opens a video."""
    import os

    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
