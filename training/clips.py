"""Replay clips with several matches (end-to-end tests, `owc bench e2e`), made like the demo clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from training import synth
from training.demo_clip import HEIGHT, QUALITY, WIDTH

FPS = 4

# The fonts the replay clips have always been drawn with (generator v5's training fonts), so the clips
# stay the same when the training fonts change.
CLIP_SPLIT = synth.Split(
    name="clips",
    latin=tuple(
        synth.FontSpec(name, shear=shear)
        for name, shear in (
            ("BebasNeue-Bold.otf", (0.12, 0.3)),
            ("BebasNeue-Regular.otf", (0.12, 0.3)),
            ("DejaVuSansCondensed-BoldOblique.ttf", (0.0, 0.15)),
            ("DejaVuSans-Bold.ttf", (0.12, 0.3)),
            ("oswald-latin-700-normal.woff", (0.12, 0.3)),
            ("barlow-condensed-latin-800-italic.woff", (0.0, 0.12)),
            ("barlow-condensed-latin-600-italic.woff", (0.0, 0.12)),
            ("anton-latin-400-normal.woff", (0.12, 0.3)),
            ("roboto-condensed-latin-700-italic.woff", (0.0, 0.12)),
            ("DejaVuSerifCondensed-BoldItalic.ttf", (0.0, 0.12)),
            ("big-shoulders-display-latin-800-normal.woff", (0.12, 0.3)),
        )
    ),
    cjk=(synth.FontSpec("NotoSansCJK-Bold.ttc"), synth.FontSpec("NotoSerifCJK-Regular.ttc")),
    natural=(),
    backgrounds=("scene",),
)


def evening(
    folder: Path,
    outcomes: list[str],
    *,
    lead_frames: int = 16,
    banner_frames: int = 12,
    tail_frames: int = 32,
    seed: int = 11,
) -> tuple[Path, dict[str, int], list[int]]:
    """Write one match per outcome: gameplay, the banner (entry streak first), gameplay.

    Returns the folder, the expected counts and the frame index where each banner starts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scene = synth.bg_scene(rng, WIDTH + 200, HEIGHT).astype(np.float32) * 0.8
    index = 0
    starts: list[int] = []
    for match, outcome in enumerate(outcomes):
        total = lead_frames + banner_frames + tail_frames
        for k in range(total):
            offset = int(100 + 80 * np.sin(index / 9.0))
            frame = scene[:, offset : offset + WIDTH].copy()
            b = k - lead_frames
            if 0 <= b < banner_frames:
                if b == 0:
                    starts.append(index)
                synth.draw_banner(
                    frame, np.random.default_rng([seed, match]), outcome, CLIP_SPLIT, alpha=1.0 if b else 0.8,
                    japanese=False, score=outcome != "draw", centre=(WIDTH * 0.51, HEIGHT * 0.43), cap_frac=0.13,
                )
                if b == 0:
                    synth.draw_streak(frame, np.random.default_rng([seed, match, 1]), HEIGHT * 0.43, 0.8)
            else:
                synth.draw_hud(frame, np.random.default_rng([seed, index // 8]), CLIP_SPLIT, crosshair=True)
            img = np.clip(frame, 0, 255).astype(np.uint8)
            ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
            if not ok:
                raise RuntimeError("JPEG encode failed")
            (folder / f"frame_{index:05d}.jpg").write_bytes(enc.tobytes())
            index += 1
    expected = {
        "victories": outcomes.count("victory"),
        "defeats": outcomes.count("defeat"),
        "draws": outcomes.count("draw"),
    }
    (folder / "clip.json").write_text(json.dumps({"fps": FPS, "expected": expected, "starts": starts}))
    return folder, expected, starts
