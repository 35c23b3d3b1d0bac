"""Seeded synthetic Overwatch-like frames with and without an end-of-match banner.

Every sample is a full 16:9 frame at a capture resolution, JPEG-encoded like
the capture service sends it, so training sees the same pixels as inference
(``services.common.vision.preprocess_bytes``). A sample is fully determined by
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

from training.synth.assets import ensure_fonts
from training.synth.banners import (
    OUTCOME_WORDS,
    OUTCOMES,
    TextStyle,
    draw_banner,
    draw_flash,
    draw_occluder,
    draw_scoreboard,
    draw_streak,
    draw_styled_text,
    draw_text,
    outcome_colour,
    random_style,
)
from training.synth.base import F32, U8, Placed, Rng
from training.synth.capture import finish_frame
from training.synth.fonts import (
    NPM_FONTS,
    FontMissingError,
    FontSpec,
    font_file,
    install_npm_fonts,
)
from training.synth.negatives import NEGATIVE_KINDS, NEGATIVE_TEXTS, NEGATIVE_TEXTS_JA, draw_negative
from training.synth.samples import (
    CAPTURE_SIZES,
    CLASS_CYCLE,
    GENERATOR_VERSION,
    HARD_CYCLE,
    HARD_VERSION,
    label_for_index,
    render_hard_sample,
    render_sample,
    work_size,
)
from training.synth.scenes import background, bg_daylight, bg_scene, draw_hud, natural_available
from training.synth.splits import EVAL, SPLITS, TRAIN, Split, check_fonts, fonts_in_use

__all__ = [
    "CAPTURE_SIZES", "CLASS_CYCLE", "EVAL", "F32", "GENERATOR_VERSION", "HARD_CYCLE", "HARD_VERSION",
    "NEGATIVE_KINDS", "NEGATIVE_TEXTS", "NEGATIVE_TEXTS_JA", "NPM_FONTS", "OUTCOMES", "OUTCOME_WORDS", "SPLITS",
    "TRAIN", "U8", "FontMissingError", "FontSpec", "Placed", "Rng", "Split", "TextStyle", "background",
    "bg_daylight", "bg_scene", "check_fonts", "draw_banner", "draw_flash", "draw_hud", "draw_negative",
    "draw_occluder", "draw_scoreboard", "draw_streak", "draw_styled_text", "draw_text", "ensure_fonts",
    "finish_frame", "font_file", "fonts_in_use", "install_npm_fonts", "label_for_index", "natural_available",
    "outcome_colour", "random_style", "render_hard_sample", "render_sample", "work_size",
]
