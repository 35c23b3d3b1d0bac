"""Banner *episodes*: gameplay frames, then the banner arriving (its entry animation) and staying, 250 ms apart.

One owner for the frame sequences the detector is judged on as a live feed
(the reader's schedule and reuse depend on what a channel showed before):

- :func:`pan` — gameplay: a camera that looks around for a few seconds, then
  stops for one or two;
- :func:`pan_gameplay`, :func:`pan_episode` — the bench's sequences
  (``python -m tools.bench.detector figures``): 640×360, a banner in one of
  four colours over a moving camera;
- :func:`render_grid_episode` — an episode of one cell of the evaluation
  grid (:mod:`training.synth.grid`: outcome × colour × stroke weight × scene ×
  language): :data:`LEAD` frames of gameplay, the banner for :data:`BANNER`
  frames (3 s at 4 fps: the entry animation first — :data:`ENTRY`: faint,
  larger, with the streak and the flash — then steady), :data:`TAIL` frames
  after it; one capture size and one recording chain for the whole episode
  (``training.episode_eval``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from training.synth.banners import draw_banner, draw_flash, draw_streak, random_style
from training.synth.base import F32, PALETTE, Rng, colour
from training.synth.capture import finish_frame
from training.synth.grid import CELLS, STROKES, scene_backdrop
from training.synth.overlays import draw_stream_overlays, draw_webcam
from training.synth.samples import CAPTURE_SIZES, GENERATOR_VERSION, work_size
from training.synth.scenes import bg_scene, draw_hud
from training.synth.splits import EVAL, Split

EPISODE_VERSION = 1
FPS = 4  # the capture's default interval, 250 ms
LEAD = 10  # 2.5 s of gameplay before the banner
BANNER = 12  # the banner on screen for 3 s, its entry included
TAIL = 2
# the entry animation, frame by frame: (alpha, scale of the word, streak strength, flash strength)
ENTRY: tuple[tuple[float, float, float, float], ...] = ((0.6, 1.25, 0.6, 0.25), (0.85, 1.1, 0.3, 0.1))

Frame = tuple[bytes, int, int]
BENCH_W, BENCH_H = 640, 360
BENCH_COLOURS = {"white": (235, 235, 240), "red": (230, 40, 50), "gold": (235, 190, 60), "blue": (70, 150, 255)}


def pan(rng: Rng, scene: F32, n: int, width: int, hud: Callable[[F32, int], None] | None = None,
        speed: float = 1.0) -> Iterator[F32]:
    """Gameplay over ``scene`` (wider than ``width``): a camera that looks around, then stops for 1-2 s.

    ``hud(frame, i)`` draws on each crop before the sensor noise; ``speed`` scales the motion (1 = 640 px wide).
    """
    h = scene.shape[0]
    x_max = scene.shape[1] - width
    x, v = x_max / 2, 0.0
    still = 0
    for i in range(n):
        if still > 0:
            still -= 1
            v = 0.0
        elif rng.random() < 0.08:
            still = int(rng.integers(4, 9))  # 1-2 s standing still
        else:
            v = float(np.clip(v + rng.normal(0, 12 * speed), -45 * speed, 45 * speed))
        x = float(np.clip(x + v, 0, x_max))
        frame = scene[:, int(x):int(x) + width].copy()
        if hud is not None:
            hud(frame, i)
        yield frame + rng.normal(0, 2.0, (h, width, 1)).astype(np.float32)


def _jpeg(img: F32) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("JPEG encode failed")
    return bytes(buf.tobytes())


def _bench_pan(rng: Rng, n: int, hud_seed: int) -> Iterator[F32]:
    scene = bg_scene(rng, BENCH_W + 400, BENCH_H).astype(np.float32) * 0.85

    def hud(frame: F32, i: int) -> None:
        draw_hud(frame, np.random.default_rng([hud_seed, i // 8]), EVAL, crosshair=True)

    return pan(rng, scene, n, BENCH_W, hud)


def pan_gameplay(seed: int = 11, n: int = 480) -> list[Frame]:
    """The bench's gameplay: 640×360 JPEG q80, a camera looking around."""
    rng = np.random.default_rng(seed)
    return [(_jpeg(f), BENCH_W, BENCH_H) for f in _bench_pan(rng, n, seed)]


def pan_episode(outcome: str, colour_name: str, seed: int) -> tuple[list[Frame], int]:
    """The bench's episode: 2 s of gameplay, the banner arriving (2 frames) and staying 3 s, then 2 s of
    gameplay; and the index of the banner's first frame."""
    rng = np.random.default_rng([seed, len(outcome), len(colour_name)])
    frames = list(_bench_pan(rng, 8 + 14 + 8, seed))
    out: list[Frame] = []
    col = np.asarray(BENCH_COLOURS[colour_name], np.float32)
    for i, f in enumerate(frames):
        k = i - 8
        if 0 <= k < 14:
            draw_banner(f, np.random.default_rng([seed, 1]), outcome, EVAL, alpha=min(1.0, 0.6 + 0.2 * k),
                        japanese=False, score=True, colour_rgb=col)
            if k < 2:
                draw_flash(f, 0.25 - 0.1 * k)
        out.append((_jpeg(f), BENCH_W, BENCH_H))
    return out, 8


def render_grid_episode(
    seed: int, cell: int, repeat: int = 0, split: Split = EVAL
) -> tuple[list[Frame], dict[str, Any]]:
    """The ``repeat``-th episode of grid cell ``CELLS[cell]``: ``LEAD + BANNER + TAIL`` JPEG frames as the capture
    sends them, and its ``info`` (the cell, ``onset`` = the banner's first frame, the capture).

    The gameplay before the banner is the cell's scene family seen by a moving camera (HUD on); on the
    ``end_screen`` scene the banner arrives with the dark end screen (a cut), which stays after it. The
    ``stream`` scene keeps the streamer's webcam and overlays on every frame. Every frame of an episode
    shares its capture size and recording chain; each has its own sensor noise. An episode depends on
    ``(seed, cell, repeat)`` only, so a smaller run's episodes are the same as the full run's.
    """
    outcome, name, weight, scene, lang = CELLS[cell]
    rng = np.random.default_rng([seed, cell, repeat, GENERATOR_VERSION, 3000 + EPISODE_VERSION])
    w, h = CAPTURE_SIZES[int(rng.integers(0, len(CAPTURE_SIZES)))]
    fw, fh = work_size(w, h)
    col = colour(rng, PALETTE[name])
    end_screen = scene == "end_screen"
    play = scene_backdrop(rng, fw + int(fw * 0.6), fh, split, "gameplay" if end_screen else scene, col)
    end = scene_backdrop(rng, fw, fh, split, "end_screen", col) if end_screen else None
    lo, hi = STROKES[weight]
    style = dataclasses.replace(random_style(rng), stroke=float(rng.uniform(lo, hi)) if hi else 0.0)
    cap = float(rng.uniform(0.095, 0.15))
    hud_seed, banner_seed, overlay_seed, finish_seed = (int(s) for s in rng.integers(0, 2**31, size=4))

    def hud(frame: F32, i: int) -> None:
        draw_hud(frame, np.random.default_rng([hud_seed, i // 8]), split, crosshair=True)

    frames: list[Frame] = []
    capture = ""
    for i, f in enumerate(pan(rng, play, LEAD + BANNER + TAIL, fw, hud, speed=fw / 640)):
        k = i - LEAD
        if end is not None and k >= 0:
            f = end + rng.normal(0, 2.0, (*end.shape[:2], 1)).astype(np.float32)
        if 0 <= k < BANNER:
            alpha, scale, streak, flash = ENTRY[k] if k < len(ENTRY) else (1.0, 1.0, 0.0, 0.0)
            box = draw_banner(f, np.random.default_rng(banner_seed), outcome, split, alpha=alpha,
                              japanese=lang == "ja", cap_frac=cap * scale, style=style, colour_rgb=col,
                              final=end_screen)
            if streak:
                draw_streak(f, np.random.default_rng([banner_seed, 1]), (box.y0 + box.y1) / 2, streak)
            if flash:
                draw_flash(f, flash)
        if scene == "stream":
            draw_webcam(f, np.random.default_rng(overlay_seed), split)
            draw_stream_overlays(f, np.random.default_rng([overlay_seed, 1]), split)
        data, fw_out, fh_out, capture = finish_frame(f, np.random.default_rng(finish_seed), w, h)
        frames.append((data, fw_out, fh_out))
    info = {"label": outcome, "colour": name, "weight": weight, "scene": scene, "lang": lang, "onset": LEAD,
            "banner_frames": BANNER, "capture": capture, "width": w, "height": h, "seed": seed,
            "cell": cell, "repeat": repeat}
    return frames, info
