"""Seeded synthetic Overwatch-like frames with and without an end-of-match banner.

Every sample is a full 16:9 frame at a capture resolution, JPEG-encoded like
the capture service sends it, so training sees the same pixels as inference
(``services.inference.vision.preprocess_bytes``). A sample is fully determined by
``(seed, index, split)``: :func:`render_sample` draws all its randomness from
``numpy.random.default_rng([seed, index, GENERATOR_VERSION])``.

Two splits use disjoint fonts and disjoint natural-image backgrounds (plus one
background family each that the other never sees), so the held-out evaluation
measures generalisation to unseen typography and scenes, not memorisation.

Modules, by concern: :mod:`.fonts` (font files, text masks), :mod:`.splits`
(train / held-out), :mod:`.scenes` (backgrounds, HUD), :mod:`.banners` (the
banner, its entry, the Tab scoreboard), :mod:`.negatives` (everything that
must stay ``none``), :mod:`.capture` (GIF / stream / small recordings, the
capture JPEG) and :mod:`.samples` (one seeded sample).

Needs numpy, OpenCV and Pillow (no torch).
"""

from __future__ import annotations

# the names callers use as ``synth.NAME``; the rest are imported from their module
from training.synth.assets import ensure_fonts
from training.synth.banners import OUTCOMES, draw_banner, draw_flash, draw_streak
from training.synth.fonts import FontMissingError, FontSpec, font_file
from training.synth.samples import (
    CAPTURE_SIZES,
    CLASS_CYCLE,
    GENERATOR_VERSION,
    HARD_CYCLE,
    HARD_VERSION,
    label_for_index,
    render_hard_sample,
    render_sample,
)
from training.synth.scenes import background, bg_daylight, bg_scene, draw_hud, natural_available
from training.synth.splits import EVAL, SPLITS, TRAIN, Split, fonts_in_use

__all__ = [
    "CAPTURE_SIZES", "CLASS_CYCLE", "EVAL", "GENERATOR_VERSION", "HARD_CYCLE", "HARD_VERSION", "OUTCOMES", "SPLITS",
    "TRAIN", "FontMissingError", "FontSpec", "Split", "background", "bg_daylight", "bg_scene",
    "draw_banner", "draw_flash", "draw_hud", "draw_streak", "ensure_fonts", "font_file", "fonts_in_use",
    "label_for_index", "natural_available", "render_hard_sample", "render_sample",
]
