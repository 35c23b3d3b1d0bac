"""One seeded sample: ``render_sample(seed, index, split)`` and the training-only ``render_hard_sample``.

A sample is fully determined by ``(seed, index, split)``: all its randomness
comes from ``numpy.random.default_rng([seed, index, GENERATOR_VERSION])``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from training.synth.banners import (
    TextStyle,
    draw_banner,
    draw_flash,
    draw_occluder,
    draw_scoreboard,
    draw_streak,
    outcome_colour_named,
    random_style,
)
from training.synth.base import F32, Placed, Rng, f32, pick, rgb2bgr, to_u8, u8
from training.synth.capture import finish_frame
from training.synth.negatives import draw_negative, draw_other_text
from training.synth.overlays import draw_stream_overlays
from training.synth.scenes import background, bg_end_screen, draw_hud
from training.synth.splits import TRAIN, Split

GENERATOR_VERSION = 7
# v7: banner colour independent of the outcome (red DRAW), the dark end screen with coloured side glows and
# the `3 | 3` / `FINAL SCORE` lines, streamers' overlays (webcam + own counter, chat, bars, alerts),
# text drawn with Pillow's basic layout engine (no system libraqm/fribidi dependence)
END_SCREEN_SHARE = 0.2  # outcome frames on the dark end screen (a matching share of `none` end screens)
OVERLAY_SHARE = 0.25  # frames of any class with a streamer's overlays over the game

CAPTURE_SIZES = (
    (640, 360), (640, 360), (640, 360), (640, 360), (480, 270), (480, 270), (800, 450), (800, 450),
    (960, 540), (1280, 720), (854, 480), (1024, 576), (1600, 900), (1920, 1080),
)

# per 10 samples: 4 none, 2 of each outcome
CLASS_CYCLE = ("none", "victory", "none", "defeat", "none", "draw", "none", "victory", "defeat", "draw")

# Tab scoreboard over a banner: how much of the banner it hides (opacity), per kind.
TAB_BANNER = (0.4, 0.65)  # banner still readable (25-40% of its contrast left): labelled with its outcome
TAB_HIDDEN = (0.65, 0.8)  # mostly hidden (14-25% left): still labelled with its outcome, so the gate passes it on as a
#                          candidate; the reader may then say `none` (never another outcome)


def label_for_index(index: int) -> str:
    return CLASS_CYCLE[index % len(CLASS_CYCLE)]


def work_size(w: int, h: int) -> tuple[int, int]:
    """Frames are drawn at most 960 wide, then scaled to the capture size (cheap, and the ROI is downscaled anyway)."""
    if w <= 960:
        return w, h
    return 960, round(960 * h / w)


def legible(frame: F32, colour_rgb: F32) -> bool:
    """Whether text of this colour would stand out from the scene where the banner goes.

    Illegible: more than a third of the banner area has (nearly) the text's colour.
    """
    H, W = frame.shape[:2]
    region = frame[int(H * 0.35):int(H * 0.56), int(W * 0.38):int(W * 0.64)]
    dist = np.abs(region - rgb2bgr(colour_rgb)[None, None, :]).mean(axis=2)
    return float((dist < 45).mean()) < 0.33


def rotate_hue(frame: F32, rng: Rng) -> F32:
    """The same scene in other hues (brightness unchanged): used instead of darkening it."""
    hsv = u8(cv2.cvtColor(to_u8(frame), cv2.COLOR_BGR2HSV))
    shift = int(rng.integers(45, 135))
    hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + shift) % 180).astype(np.uint8)
    return f32(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def legible_background(rng: Rng, fw: int, fh: int, split: Split, colour_rgb: F32) -> F32:
    """A background the banner can be read on: drawn again (twice at most), then hue-rotated.

    Nothing darkens the scene around the text, as in the game; a scene the text
    would vanish into would only teach label noise.
    """
    frame = background(rng, fw, fh, split).astype(np.float32)
    for _ in range(2):
        if legible(frame, colour_rgb):
            return frame
        frame = background(rng, fw, fh, split).astype(np.float32)
    return frame if legible(frame, colour_rgb) else rotate_hue(frame, rng)


def weight_of(style: TextStyle) -> str:
    """The stroke weight a style draws with, as the evaluation grid names it."""
    return "thin" if style.stroke < 0 else "bold" if style.stroke > 0 else "regular"


def _outcome(frame: F32, rng: Rng, label: str, split: Split, colour_rgb: F32, entry_p: float = 0.2,
             alpha: tuple[float, float] = (0.85, 1.0), thin: float = 0.45, final: bool = False,
             style: TextStyle | None = None, japanese: bool | None = None,
             extras: bool = True) -> tuple[Placed, str, str, str]:
    """The banner on ``frame``, sometimes its entry (streak, flash), an occluder or the Tab scoreboard.

    ``extras`` False: the banner alone (no occluder, no scoreboard). Returns its box, kind, language and
    stroke weight.
    """
    ja = rng.random() < 0.3 if japanese is None else japanese
    entry = rng.random() < entry_p
    a = float(rng.uniform(0.75, 1.0)) if entry else float(rng.uniform(*alpha))
    style = style or random_style(rng, thin=thin)
    box = draw_banner(frame, rng, label, split, alpha=a, japanese=ja, style=style, colour_rgb=colour_rgb,
                      final=final)
    kind = "banner"
    if entry:
        draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.2, 0.6)))
        if rng.random() < 0.5:
            draw_flash(frame, float(rng.uniform(0.05, 0.25)))
        kind = "entry"
    if not extras:
        return box, kind, "ja" if ja else "en", weight_of(style)
    if rng.random() < 0.1:
        draw_occluder(frame, rng, box, split, max_frac=0.25)
    r = rng.random()
    if r < 0.1:
        draw_scoreboard(frame, rng, split, float(rng.uniform(*TAB_BANNER)))
        kind = "tab_banner"
    elif r < 0.14:
        draw_scoreboard(frame, rng, split, float(rng.uniform(*TAB_HIDDEN)))
        kind = "tab_hidden"
    return box, kind, "ja" if ja else "en", weight_of(style)


def outcome_scene(rng: Rng, fw: int, fh: int, split: Split, col: F32) -> tuple[F32, str]:
    """The scene behind a banner: the dark end screen sometimes, else a legible game-like background + HUD."""
    if rng.random() < END_SCREEN_SHARE:
        return bg_end_screen(rng, fw, fh).astype(np.float32), "end_screen"
    frame = legible_background(rng, fw, fh, split, col)
    draw_hud(frame, rng, split, crosshair=rng.random() < 0.3)
    return frame, "game"


def render_sample(
    seed: int, index: int, split: Split = TRAIN, label: str | None = None, size: tuple[int, int] | None = None
) -> tuple[bytes, int, int, dict[str, Any]]:
    """One JPEG frame (of ``size`` if given, else a random capture size). Returns ``(jpeg_bytes, width, height, info)``.

    ``info``: ``label`` (the class), ``kind`` (banner, entry, tab_banner, tab_hidden, or the
    negative's kind), ``lang`` (en/ja for outcome frames, "" for none), ``capture`` (plain, gif,
    blocky, rescaled), ``width``, ``height``.
    """
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION])
    label = label or label_for_index(index)
    w, h = CAPTURE_SIZES[int(rng.integers(0, len(CAPTURE_SIZES)))]
    if size is not None:
        w, h = size
    fw, fh = work_size(w, h)
    info: dict[str, Any] = {"label": label, "width": w, "height": h, "lang": ""}
    if label != "none":
        info["colour"], col = outcome_colour_named(rng, label)
        frame, info["scene"] = outcome_scene(rng, fw, fh, split, col)
        final = info["scene"] == "end_screen" and rng.random() < 0.85
        _box, info["kind"], info["lang"], info["weight"] = _outcome(frame, rng, label, split, col, final=final)
    else:
        frame = background(rng, fw, fh, split).astype(np.float32)
        draw_hud(frame, rng, split, crosshair=True)
        info["kind"] = draw_negative(frame, rng, split)
        if rng.random() < 0.08:
            box = Placed(int(fw * 0.4), int(fh * 0.38), int(fw * 0.62), int(fh * 0.52))
            draw_occluder(frame, rng, box, split, max_frac=0.5)
    if rng.random() < OVERLAY_SHARE:
        info["overlays"] = draw_stream_overlays(frame, rng, split)
    data, w, h, info["capture"] = finish_frame(frame, rng, w, h)
    return data, w, h, info


# ---------------------------------------------------------------- extra hard training examples

HARD_VERSION = 3
# per 20 hard samples: 10 none (texts and screens styled like the banner), 10 outcomes (thin, faint, degraded)
HARD_CYCLE = ("none", "defeat", "none", "victory", "none", "draw", "none", "defeat", "none", "victory",
              "none", "defeat", "none", "draw", "none", "defeat", "none", "victory", "none", "draw")


def render_hard_sample(seed: int, index: int, split: Split = TRAIN) -> tuple[bytes, int, int, dict[str, Any]]:
    """Training-only hard examples (``render_sample`` and so the held-out set are unchanged).

    ``none``: other big texts (DEFEND, ATTACK, DEFEATED, callouts) drawn exactly
    where and how the banner is drawn, and the screens that show outcome words
    elsewhere (career history, Overwatch 1, kill feeds), so only the word and
    its place tell them apart. Outcomes: banners the way the gate misses them —
    thin strokes on bright busy daylight scenes, faint (fading in, washed out
    by the entry), small captures, GIF palettes and stream blocking.
    """
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION, 1000 + HARD_VERSION])
    label = HARD_CYCLE[index % len(HARD_CYCLE)]
    w, h = pick(rng, ((480, 270), (640, 360), (640, 360), (800, 450), (800, 450), (960, 540), (1280, 720)))
    fw, fh = work_size(w, h)
    info: dict[str, Any] = {"label": label, "width": w, "height": h, "lang": ""}
    if label == "none":
        frame = background(rng, fw, fh, split).astype(np.float32)
        draw_hud(frame, rng, split, crosshair=rng.random() < 0.5)
        r = rng.random()
        if r < 0.6:
            info["kind"] = "hard_" + draw_other_text(frame, rng, split, banner_like=True)
        else:
            kind = pick(rng, ("career", "ow1_end", "kill_feed", "kill_callout", "scoreboard", "word_elsewhere",
                              "cut_banner", "end_screen"))
            info["kind"] = "hard_" + draw_negative(frame, rng, split, kind)
        if rng.random() < 0.2:
            draw_flash(frame, float(rng.uniform(0.05, 0.3)))
    else:
        info["colour"], col = outcome_colour_named(rng, label)
        frame, info["scene"] = outcome_scene(rng, fw, fh, split, col)
        final = info["scene"] == "end_screen" and rng.random() < 0.85
        _box, kind, info["lang"], info["weight"] = _outcome(frame, rng, label, split, col, entry_p=0.3,
                                                            alpha=(0.6, 1.0), thin=0.7, final=final)
        info["kind"] = "hard_" + kind
    if rng.random() < OVERLAY_SHARE:
        info["overlays"] = draw_stream_overlays(frame, rng, split)
    data, w, h, info["capture"] = finish_frame(frame, rng, w, h)
    return data, w, h, info



