"""The evaluation grid: banners of every outcome x colour x stroke weight x scene x language.

``render_grid_sample(seed, index, split)`` draws the banner of grid cell
``index // per_cell`` (every factor fixed by the cell, everything else random
and seeded), so recall can be reported for each colour and each outcome
separately — the real DRAW is red, and no colour may be tied to an outcome.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from training.synth.banners import OUTCOMES, random_style
from training.synth.base import F32, PALETTE, Rng, colour
from training.synth.capture import finish_frame
from training.synth.overlays import draw_stream_overlays, draw_webcam
from training.synth.samples import CAPTURE_SIZES, GENERATOR_VERSION, _outcome, legible, rotate_hue, work_size
from training.synth.scenes import background, bg_daylight, bg_end_screen, draw_hud
from training.synth.splits import Split

GRID_VERSION = 1
COLOURS = tuple(PALETTE)
WEIGHTS = ("thin", "regular", "bold")
SCENES = ("daylight", "gameplay", "end_screen", "stream")
LANGS = ("en", "ja")
CELLS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    (o, c, w, s, lang) for o in OUTCOMES for c in COLOURS for w in WEIGHTS for s in SCENES for lang in LANGS
)
STROKES = {"thin": (-0.022, -0.008), "regular": (0.0, 0.0), "bold": (0.008, 0.02)}


def scene_backdrop(rng: Rng, fw: int, fh: int, split: Split, scene: str, col: F32) -> F32:
    """A grid scene's picture without HUD or overlays (the end screen, or a scene the colour is legible on)."""
    if scene == "end_screen":
        return bg_end_screen(rng, fw, fh).astype(np.float32)
    frame: F32 | None = None
    for _ in range(3):
        img = bg_daylight(rng, fw, fh) if scene == "daylight" else background(rng, fw, fh, split)
        frame = img.astype(np.float32)
        if legible(frame, col):
            break
    assert frame is not None
    if not legible(frame, col):
        frame = rotate_hue(frame, rng)
    return frame


def _scene(rng: Rng, fw: int, fh: int, split: Split, scene: str, col: F32) -> F32:
    frame = scene_backdrop(rng, fw, fh, split, scene, col)
    if scene == "end_screen":
        return frame
    draw_hud(frame, rng, split, crosshair=rng.random() < 0.3)
    if scene == "stream":
        draw_webcam(frame, rng, split)  # the webcam box at the right edge, with its own counter
        draw_stream_overlays(frame, rng, split)
    return frame


def render_grid_sample(
    seed: int, index: int, split: Split, per_cell: int, step: int = 1
) -> tuple[bytes, int, int, dict[str, Any]]:
    """The ``index % per_cell``-th banner of grid cell ``(index // per_cell) * step``; ``info`` names the cell.

    ``step`` > 1 spreads a quick, smaller grid over every factor (every ``step``-th cell).
    """
    outcome, name, weight, scene, lang = CELLS[((index // per_cell) * step) % len(CELLS)]
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION, 2000 + GRID_VERSION])
    w, h = CAPTURE_SIZES[int(rng.integers(0, len(CAPTURE_SIZES)))]
    fw, fh = work_size(w, h)
    col = colour(rng, PALETTE[name])
    frame = _scene(rng, fw, fh, split, scene, col)
    lo, hi = STROKES[weight]
    style = dataclasses.replace(random_style(rng), stroke=float(rng.uniform(lo, hi)) if hi else 0.0)
    _box, kind, _lang, _w = _outcome(frame, rng, outcome, split, col, entry_p=0.0, final=scene == "end_screen",
                                     style=style, japanese=lang == "ja", extras=False)
    data, w, h, capture = finish_frame(frame, rng, w, h)
    info = {"label": outcome, "colour": name, "weight": weight, "scene": scene, "lang": lang, "kind": kind,
            "capture": capture, "width": w, "height": h}
    return data, w, h, info
