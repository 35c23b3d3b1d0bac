"""The bundled demo clip, generated deterministically on first use (no torch, about a second).

30 s at 4 fps, 640×360 JPEG q80 (what the capture sends by default):
~10 s of gameplay, a ``VICTORY!`` banner arriving with its streak and flash
and staying ~5 s, then ~15 s of gameplay without a banner. Replayed through the
real pipeline it must count exactly :data:`DEMO_RESULT`.

    from training.demo_clip import ensure_demo_clip, DEMO_RESULT
    folder = ensure_demo_clip()            # data/demo/clip/frame_0000.jpg ... frame_0119.jpg

or ``python -m training.demo_clip [FOLDER] [--video out.mp4]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from training import synth
from training.config import PROJECT_ROOT

WIDTH, HEIGHT = 640, 360
FPS = 4
QUALITY = 80
FRAME_COUNT = 120
BANNER_START = 40  # 10 s of gameplay first
BANNER_FRAMES = 20  # 5 s of banner
ENTRY_FRAMES = 2  # streak + flash while the banner arrives
DEMO_SEED = 7
CLIP_VERSION = 1
DEFAULT_DIR = PROJECT_ROOT / "data" / "demo" / "clip"

DEMO_RESULT = {"victories": 1, "defeats": 0, "draws": 0}

# Debian fonts only, so the clip is the same with or without the npm training fonts installed.
DEMO_SPLIT = synth.Split(
    name="demo",
    latin=(synth.FontSpec("BebasNeue-Bold.otf", shear=(0.2, 0.2)),),
    cjk=(synth.FontSpec("NotoSansCJK-Bold.ttc"),),
    natural=(),
    backgrounds=("scene",),
    hud_face="duplex",
)


def frame_label(index: int) -> str:
    """Ground truth of frame ``index``: "victory" while the banner is up, else "none"."""
    return "victory" if BANNER_START <= index < BANNER_START + BANNER_FRAMES else "none"


def frame_name(index: int) -> str:
    return f"frame_{index:04d}.jpg"


def render_frames(seed: int = DEMO_SEED) -> list[bytes]:
    """All frames as JPEG bytes (deterministic for a given seed and library versions)."""
    rng = np.random.default_rng([seed, CLIP_VERSION])
    pano_w = WIDTH + 200
    scene = synth.bg_scene(rng, pano_w, HEIGHT).astype(np.float32) * 0.8
    hud_rng_seed = int(rng.integers(0, 2**31))
    frames: list[bytes] = []
    for i in range(FRAME_COUNT):
        offset = int(100 + 80 * np.sin(i / 9.0))  # the camera looks around
        frame = scene[:, offset:offset + WIDTH].copy()
        label = frame_label(i)
        in_match = i < BANNER_START
        hud_rng = np.random.default_rng([hud_rng_seed, i // 8])  # HUD changes every 2 s
        if in_match:
            synth.draw_hud(frame, hud_rng, DEMO_SPLIT, crosshair=True)
        if label == "victory":
            k = i - BANNER_START
            alpha = 1.0 if k >= ENTRY_FRAMES else 0.75 + 0.1 * k
            # the same rng every frame: the banner itself stays still
            synth.draw_banner(frame, np.random.default_rng([seed, CLIP_VERSION, 1]), "victory", DEMO_SPLIT,
                              alpha=alpha, japanese=False, score=True, centre=(WIDTH * 0.51, HEIGHT * 0.43),
                              cap_frac=0.13)
            if k < ENTRY_FRAMES:
                synth.draw_streak(frame, np.random.default_rng([seed, k]), HEIGHT * 0.43, 0.9 - 0.35 * k,
                                  colour_rgb=np.array([235, 190, 60], np.float32))
                synth.draw_flash(frame, 0.3 - 0.12 * k)
        noise = np.random.default_rng([seed, 99, i]).normal(0, 2.0, size=(HEIGHT, WIDTH, 1)).astype(np.float32)
        img = np.clip(frame + noise, 0, 255).astype(np.uint8)
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if not ok:
            raise RuntimeError("JPEG encode failed")
        frames.append(enc.tobytes())
    return frames


def _fingerprint(frames: list[bytes]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(hashlib.sha256(f).digest())
    return h.hexdigest()


def ensure_demo_clip(path: Path = DEFAULT_DIR) -> Path:
    """Make sure ``path`` holds the demo clip (``frame_0000.jpg`` …, sorted by name); return ``path``.

    Regenerated when missing, incomplete or from another clip version. The
    folder also gets ``clip.json`` (fps, size, ground truth, expected result).
    """
    path = Path(path)
    manifest = path / "clip.json"
    if manifest.exists():
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            info = {}
        if info.get("version") == CLIP_VERSION and all((path / frame_name(i)).exists() for i in range(FRAME_COUNT)):
            return path
    frames = render_frames()
    path.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(frames):
        (path / frame_name(i)).write_bytes(data)
    info = {
        "version": CLIP_VERSION,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": FRAME_COUNT,
        "banner_frames": [BANNER_START, BANNER_START + BANNER_FRAMES - 1],
        "expected": DEMO_RESULT,
        "sha256": _fingerprint(frames),
    }
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return path


def write_video(out: Path, frames: list[bytes] | None = None) -> Path:
    """The same clip as an MP4 (mp4v) for sources that want a video file."""
    frames = frames if frames is not None else render_frames()
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    try:
        for data in frames:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise RuntimeError("demo frame does not decode")
            writer.write(img)
    finally:
        writer.release()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo_clip", description="Generate the demo clip.")
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--video", type=Path, help="also write an MP4 here")
    args = parser.parse_args(argv)
    folder = ensure_demo_clip(args.folder)
    print(f"demo clip: {folder} ({FRAME_COUNT} frames, {FPS} fps, expected {DEMO_RESULT})")
    if args.video:
        print(f"video: {write_video(args.video)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
