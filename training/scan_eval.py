"""Recordings in the evaluation: generated evenings with known results through ``owc scan``'s scanner.

``python -m training.scan_eval`` (and ``make eval``, through :func:`run`)
renders evenings of matches with :func:`training.clips.evening` (gameplay,
the banner with its entry streak, gameplay; every outcome), writes one of
them as a video too, and scans them exactly as ``owc scan`` does
(:class:`services.scan.scanner.Scanner`: the shipped detector, the real
counting rules, the capture's default frame size and encoding, 250 ms).
The clips' matches are 15 s apart, so the rules' cooldown and ``none`` run
are shortened to fit (:data:`CLIP_RULES`); everything else is the default.

Recall per outcome: banners counted with their outcome / banners shown. Any
other count (a wrong outcome, a second count of one banner) is listed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import cv2

from services.common.config.sections import CaptureSettings
from services.inference.classifier import Classifier
from services.scan.recording import open_recording
from services.scan.scanner import Scanner
from services.state.rules import Rules
from training.clips import FPS, evening
from training.config import MODEL_PATH

OUTCOMES = ("victory", "defeat", "draw")
# a clip's match: 16 frames of gameplay, 12 of banner, 32 of gameplay at 4 fps = 15 s
CLIP_RULES = Rules(cooldown_ms=5_000, required_none=8)
SEEDS = (101, 102, 103)


def _as_video(folder: Path, path: Path) -> Path:
    images = [cast(Any, cv2.imread(str(f))) for f in sorted(folder.glob("*.jpg"))]
    fourcc = cast(Any, cv2).VideoWriter_fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(path), fourcc, float(FPS), (images[0].shape[1], images[0].shape[0]))
    for image in images:
        writer.write(image)
    writer.release()
    return path


def _score(results: list[tuple[str, int]], starts: list[int], outcomes: list[str]) -> tuple[list[bool], list[str]]:
    """Which banners were counted with their outcome; every other count, described."""
    hit = [False] * len(starts)
    extra = []
    for outcome, at_ms in results:
        frame = at_ms * FPS // 1000
        match = max((i for i, s in enumerate(starts) if s <= frame), default=-1)
        if match >= 0 and outcomes[match] == outcome and not hit[match] and frame - starts[match] < 12:
            hit[match] = True
        else:
            extra.append(f"{outcome} at {at_ms} ms (banner {match}: {outcomes[match] if match >= 0 else '-'})")
    return hit, extra


def run(model: Path = MODEL_PATH, evenings: int = len(SEEDS), per_outcome: int = 2) -> dict[str, Any]:
    """Scan ``evenings`` generated evenings (``per_outcome`` matches of each outcome each; the first also as
    an mp4); print and return recall per outcome."""
    started = time.monotonic()
    scanner = Scanner(Classifier(model), CLIP_RULES, CaptureSettings.model_validate({}))
    shown = dict.fromkeys(OUTCOMES, 0)
    counted = dict.fromkeys(OUTCOMES, 0)
    extra: list[str] = []
    frames = 0
    scan_s = 0.0
    with tempfile.TemporaryDirectory(prefix="owc-scan-eval-") as tmp:
        for n, seed in enumerate(SEEDS[:evenings]):
            order = [OUTCOMES[(k + n) % 3] for k in range(3 * per_outcome)]
            folder, _, starts = evening(Path(tmp) / f"evening{n}", order, seed=seed)
            recordings = [folder] + ([_as_video(folder, Path(tmp) / f"evening{n}.mp4")] if n == 0 else [])
            for path in recordings:
                report = scanner.scan(open_recording(path, 1000 // FPS), 250)
                frames += report.frames
                scan_s += report.seconds
                hit, wrong = _score([(r.outcome, r.at_ms) for r in report.results], starts, order)
                extra += [f"{path.name}: {w}" for w in wrong]
                for outcome, ok in zip(order, hit, strict=True):
                    shown[outcome] += 1
                    counted[outcome] += ok
    out = {
        "clips": evenings + 1, "banners": shown, "counted": counted,
        "recall": {k: round(counted[k] / shown[k], 4) if shown[k] else None for k in OUTCOMES},
        "other_counts": extra, "frames": frames, "frames_per_second": round(frames / scan_s, 1) if scan_s else 0.0,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("recordings (owc scan on generated evenings): recall "
          + ", ".join(f"{k} {counted[k]}/{shown[k]}" for k in OUTCOMES)
          + f"; other counts {len(extra)}; {out['frames_per_second']} frames/s", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.scan_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--evenings", type=int, default=len(SEEDS), choices=range(1, len(SEEDS) + 1))
    parser.add_argument("--per-outcome", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.model, args.evenings, args.per_outcome), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
