"""Banner-style text, the end-of-match banner, its entry streak and flash, occluders, the Tab scoreboard."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.synth.base import (
    F32,
    GOLD,
    PALETTE,
    RED,
    Placed,
    Rng,
    add,
    colour,
    f32,
    fill_rect,
    paste,
    rand_colour,
    rgb2bgr,
    to_u8,
)
from training.synth.fonts import FontSpec, text_mask, usable
from training.synth.scenes import bg_natural, bg_noise, hershey, random_name
from training.synth.splits import Split

OUTCOME_WORDS: dict[str, tuple[str, str]] = {
    "victory": ("VICTORY!", "勝利！"),
    "defeat": ("DEFEAT", "敗北"),
    "draw": ("DRAW", "引き分け"),
}
OUTCOMES = ("victory", "defeat", "draw")


@dataclass(frozen=True)
class TextStyle:
    """How one text is drawn (the game-like path, :func:`draw_text`)."""

    stroke: float = 0.0  # <0 thinner strokes, >0 bolder (fraction of the font size)
    glow: float = 0.0  # additive glow strength, 0 = none
    glow_sigma: float = 0.15  # glow radius as a fraction of the text height
    outline: float = 0.0  # dark outline opacity, 0 = none (rare in the game)
    edge: float = 0.0  # faint lighter rim around the letters (seen on the real DEFEAT)
    gradient: float = 0.1  # fill brighter at the top by this fraction
    squeeze: float = 1.0  # horizontal scale after rendering


PLAIN = TextStyle()


def random_style(rng: Rng, thin: float = 0.45) -> TextStyle:
    """A game-like text style: often thinned strokes, rarely a dark outline, a faint light edge."""
    r = rng.random()
    stroke = float(rng.uniform(-0.022, -0.006)) if r < thin else (
        float(rng.uniform(0.005, 0.02)) if r < thin + 0.12 else 0.0)
    glow = float(rng.uniform(0.1, 0.6)) if rng.random() < 0.35 else 0.0
    outline = float(rng.uniform(0.25, 0.8)) if rng.random() < 0.1 else 0.0
    edge = float(rng.uniform(0.1, 0.45)) if rng.random() < 0.5 else 0.0
    squeeze = float(rng.uniform(0.78, 1.1)) if rng.random() < 0.35 else 1.0
    return TextStyle(stroke=stroke, glow=glow, glow_sigma=float(rng.uniform(0.06, 0.3)), outline=outline,
                     edge=edge, gradient=float(rng.uniform(0.0, 0.2)), squeeze=squeeze)


def _fitted_mask(
    rng: Rng, text: str, spec: FontSpec, cap_h: float, max_w: float | None, stroke: float, squeeze: float
) -> F32:
    size = max(8, int(cap_h * 1.35))
    shear = float(rng.uniform(*spec.shear))
    mask = text_mask(text, spec, size, shear)
    if stroke:
        varied = text_mask(text, spec, size, shear, stroke)
        if float(varied.sum()) >= 0.4 * float(mask.sum()):  # never erode a thin font away
            mask = varied
    mh, mw = mask.shape
    scale = cap_h / max(1, mh)
    if max_w is not None and mw * scale * squeeze > max_w:
        scale = max_w / (mw * squeeze)
    nw, nh = max(2, int(mw * scale * squeeze)), max(2, int(mh * scale))
    return f32(cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA))


def _on_canvas(
    mask: F32, centre: tuple[float, float], keep: tuple[float, float, float, float] | None
) -> tuple[F32, int, int, Placed]:
    """``mask`` (only the ``keep`` fraction of it, for a cut banner) on a padded canvas centred at ``centre``.

    Returns the canvas, its top-left corner in the frame and the box of the text itself.
    """
    nh, nw = mask.shape
    if keep is not None:
        kx0, ky0, kx1, ky1 = keep
        cut = np.zeros_like(mask)
        cut[int(ky0 * nh):int(ky1 * nh), int(kx0 * nw):int(kx1 * nw)] = 1
        mask = mask * cut
    pad = max(4, int(nh * 0.6))
    big = np.zeros((nh + 2 * pad, nw + 2 * pad), np.float32)
    big[pad:pad + nh, pad:pad + nw] = mask
    x = int(centre[0] - nw / 2) - pad
    y = int(centre[1] - nh / 2) - pad
    return big, x, y, Placed(x + pad, y + pad, x + pad + nw, y + pad + nh)


def _fill(frame: F32, big: F32, top: F32, bot: F32, alpha: float, x: int, y: int) -> None:
    """The letters of ``big`` in a vertical gradient from ``top`` to ``bot`` (BGR)."""
    t = np.linspace(0, 1, big.shape[0], dtype=np.float32)[:, None, None]
    fill = (top * (1 - t) + bot * t) * np.ones((1, big.shape[1], 1), np.float32)
    paste(frame, fill.astype(np.float32), f32(big * alpha), x, y)


def draw_text(
    frame: F32,
    rng: Rng,
    text: str,
    spec: FontSpec,
    cap_h: float,
    centre: tuple[float, float],
    colour_rgb: F32,
    style: TextStyle = PLAIN,
    alpha: float = 1.0,
    max_w: float | None = None,
    keep: tuple[float, float, float, float] | None = None,
) -> Placed:
    """Game-like text: flat fill with a slight gradient, optional light edge, glow, thin strokes. Returns its box.

    Nothing is drawn behind the letters except what ``style`` asks for: the scene stays as it is.
    """
    mask = _fitted_mask(rng, text, spec, cap_h, max_w, style.stroke, style.squeeze)
    nh = mask.shape[0]
    big, x, y, placed = _on_canvas(mask, centre, keep)
    col = rgb2bgr(colour_rgb)
    if style.glow:
        g = f32(cv2.GaussianBlur(big, (0, 0), max(0.5, nh * style.glow_sigma))) * style.glow * alpha
        add(frame, g[:, :, None] * (col * 0.8)[None, None, :], x, y)
    if style.outline:
        k = max(1, int(nh * 0.03))
        outline = f32(cv2.dilate(big, np.ones((2 * k + 1, 2 * k + 1), np.uint8)))
        dark = col * 0.2
        paste(frame, np.broadcast_to(dark, (*big.shape, 3)).astype(np.float32), outline * style.outline * alpha, x, y)
    if style.edge:
        rim = np.clip(f32(cv2.dilate(big, np.ones((3, 3), np.uint8))) - big, 0, 1)
        light = col + (255 - col) * 0.6
        paste(frame, np.broadcast_to(light, (*big.shape, 3)).astype(np.float32), rim * style.edge * alpha, x, y)
    top = np.clip(col * (1 + style.gradient), 0, 255)
    bot = col * (1 - style.gradient / 2)
    _fill(frame, big, top, bot, alpha, x, y)
    return placed


def draw_styled_text(
    frame: F32, rng: Rng, text: str, spec: FontSpec, cap_h: float, centre: tuple[float, float], colour_rgb: F32,
    alpha: float = 1.0, glow: bool | None = None, max_w: float | None = None,
    keep: tuple[float, float, float, float] | None = None,
) -> Placed:
    """The generator-v5 banner text (the demo clip and replay clips still use it): gradient fill, glow, outline."""
    size = max(8, int(cap_h * 1.35))
    shear = float(rng.uniform(*spec.shear))
    mask = text_mask(text, spec, size, shear)
    mh, mw = mask.shape
    scale = cap_h / max(1, mh)
    if max_w is not None and mw * scale > max_w:
        scale = max_w / mw
    nw, nh = max(2, int(mw * scale)), max(2, int(mh * scale))
    mask = f32(cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA))
    if rng.random() < 0.25:  # slightly condensed / stretched
        sx = float(rng.uniform(0.85, 1.1))
        nw = max(2, int(nw * sx))
        mask = f32(cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_LINEAR))
    big, x, y, placed = _on_canvas(mask, centre, keep)
    col = rgb2bgr(colour_rgb)
    # glow (screen-like additive light around the letters)
    if glow if glow is not None else rng.random() < 0.7:
        sigma = nh * float(rng.uniform(0.08, 0.3))
        g = f32(cv2.GaussianBlur(big, (0, 0), sigma)) * float(rng.uniform(0.3, 0.9)) * alpha
        gcol = col * float(rng.uniform(0.6, 1.0))
        add(frame, g[:, :, None] * gcol[None, None, :], x, y)
    # outline
    if rng.random() < 0.4:
        k = max(1, int(nh * rng.uniform(0.02, 0.06)))
        outline = f32(cv2.dilate(big, np.ones((2 * k + 1, 2 * k + 1), np.uint8)))
        dark = col * float(rng.uniform(0.0, 0.35))
        paste(frame, np.broadcast_to(dark, (*big.shape, 3)).astype(np.float32), outline * alpha, x, y)
    # fill with a vertical gradient
    top = np.clip(col * float(rng.uniform(1.0, 1.2)), 0, 255)
    bot = col * float(rng.uniform(0.75, 1.0))
    _fill(frame, big, top, bot, alpha, x, y)
    return placed


# The colours the game is known to use for each outcome word (the real DRAW is red, like DEFEAT);
# the generator uses them for a minority of banners only: most banners get any colour of the palette.
USUAL_COLOURS: dict[str, tuple[str, ...]] = {
    "victory": ("gold",),
    "defeat": ("red",),
    "draw": ("red", "white", "silver"),
}
USUAL_SHARE = 0.35


def outcome_colour_named(rng: Rng, label: str) -> tuple[str, F32]:
    """A banner colour for ``label`` and its palette name: the game's usual one sometimes, else any colour."""
    names = USUAL_COLOURS.get(label, ("white",)) if rng.random() < USUAL_SHARE else tuple(PALETTE)
    name = str(names[int(rng.integers(0, len(names)))])
    return name, colour(rng, PALETTE[name])


def outcome_colour(rng: Rng, label: str) -> F32:
    return outcome_colour_named(rng, label)[1]


def draw_banner(
    frame: F32,
    rng: Rng,
    label: str,
    split: Split,
    alpha: float = 1.0,
    japanese: bool | None = None,
    score: bool | None = None,
    centre: tuple[float, float] | None = None,
    cap_frac: float | None = None,
    keep: tuple[float, float, float, float] | None = None,
    style: TextStyle | None = None,
    colour_rgb: F32 | None = None,
    final: bool = False,
) -> Placed:
    """The end-of-match banner for ``label`` where the game puts it (with jitter).

    ``style`` None draws the v5 look (glow, outline, gradient: the demo and replay clips);
    a :class:`TextStyle` draws the game-like look of :func:`draw_text`. ``final``: the end screen's
    layout (a large white ``3 | 3`` under the word and ``FINAL SCORE`` under that) instead of the
    small score line.
    """
    H, W = frame.shape[:2]
    ja = (rng.random() < 0.3) if japanese is None else japanese
    text = OUTCOME_WORDS[label][1 if ja else 0]
    fonts = usable(split.cjk if ja else split.latin)
    spec = fonts[int(rng.integers(0, len(fonts)))]
    if ja:
        spec = FontSpec(spec.file, spec.index, (0.05, 0.25))
    cap = H * (cap_frac if cap_frac is not None else float(rng.uniform(0.095, 0.15)))
    with_score = (rng.random() < (0.5 if label != "draw" else 0.3)) if score is None else score
    explicit = centre is not None
    if centre is None:
        centre = (W * float(rng.uniform(0.485, 0.535)), H * float(rng.uniform(0.41, 0.47)))
    cx, cy = centre
    if final and not explicit:
        cy -= H * float(rng.uniform(0.0, 0.03))
    elif with_score and not explicit:
        cy -= H * 0.02
    col = outcome_colour(rng, label) if colour_rgb is None else colour_rgb
    if style is None:
        box = draw_styled_text(frame, rng, text, spec, cap, (cx, cy), col, alpha=alpha, max_w=W * 0.3, keep=keep)
    else:
        box = draw_text(frame, rng, text, spec, cap, (cx, cy), col, style, alpha=alpha, max_w=W * 0.3, keep=keep)
    if final and keep is None:
        draw_final_score(frame, rng, split, label, box, cap, alpha, style)
    elif with_score and keep is None:
        a, b = final_score(rng, label)
        sfonts = usable(split.latin)
        sfont = sfonts[int(rng.integers(0, len(sfonts)))]
        sc = colour(rng, ((220, 255), (220, 255), (220, 255)))
        scap = cap * float(rng.uniform(0.35, 0.5))
        spos = (cx + float(rng.uniform(-0.01, 0.01)) * W, box.y1 + cap * float(rng.uniform(0.45, 0.7)))
        if style is None:
            draw_styled_text(frame, rng, f"{a} | {b}", sfont, scap, spos, sc, alpha=alpha, glow=False)
        else:
            draw_text(frame, rng, f"{a} | {b}", sfont, scap, spos, sc, TextStyle(edge=style.edge), alpha=alpha)
    return box


def final_score(rng: Rng, label: str) -> tuple[int, int]:
    """A plausible final score for ``label`` (equal for a draw)."""
    a = int(rng.integers(0, 6))
    if label == "draw":
        return a, a
    b = int(rng.integers(0, 6))
    if a == b:
        b = a + 1
    lo, hi = min(a, b), max(a, b)
    return (hi, lo) if label == "victory" else (lo, hi) if label == "defeat" else (a, b)


def draw_final_score(
    frame: F32, rng: Rng, split: Split, label: str, box: Placed, cap: float, alpha: float, style: TextStyle | None,
) -> None:
    """The end screen's score under the banner: a large white ``3 | 3`` and a small ``FINAL SCORE`` below it."""
    W = frame.shape[1]
    a, b = final_score(rng, label)
    sfonts = usable(split.latin)
    sfont = sfonts[int(rng.integers(0, len(sfonts)))]
    white = colour(rng, ((225, 255), (225, 255), (225, 255)))
    cx = (box.x0 + box.x1) / 2 + float(rng.uniform(-0.01, 0.01)) * W
    scap = cap * float(rng.uniform(0.65, 1.0))
    sy = box.y1 + cap * float(rng.uniform(0.25, 0.45)) + scap / 2
    plain = TextStyle(edge=style.edge if style else 0.0)
    sbox = draw_text(frame, rng, f"{a} | {b}", sfont, scap, (cx, sy), white, plain, alpha=alpha, max_w=W * 0.2)
    if rng.random() < 0.85:
        fcap = cap * float(rng.uniform(0.14, 0.24))
        fy = sbox.y1 + fcap * float(rng.uniform(0.8, 1.6)) + fcap / 2
        draw_text(frame, rng, "FINAL SCORE", sfont, fcap, (cx, fy), white * float(rng.uniform(0.75, 1.0)), PLAIN,
                  alpha=alpha, max_w=W * 0.2)


def draw_streak(frame: F32, rng: Rng, cy: float, strength: float, colour_rgb: F32 | None = None) -> None:
    """The bright horizontal red/gold streak of the banner's entry."""
    H, W = frame.shape[:2]
    if colour_rgb is None:
        colour_rgb = colour(rng, GOLD if rng.random() < 0.5 else RED)
    half = H * float(rng.uniform(0.01, 0.06))
    ys = np.arange(H, dtype=np.float32)
    prof = np.exp(-0.5 * ((ys - cy) / half) ** 2)
    span = float(rng.uniform(0.3, 1.0))
    xs = np.arange(W, dtype=np.float32)
    xprof = np.clip(1.3 - np.abs(xs - W / 2) / (W * span / 2), 0, 1)
    layer = prof[:, None] * xprof[None, :] * strength
    col = rgb2bgr(colour_rgb)
    frame += layer[:, :, None] * (col * 1.2 + 60)[None, None, :]


def draw_flash(frame: F32, strength: float) -> None:
    frame += (255.0 - frame) * strength


def draw_occluder(frame: F32, rng: Rng, box: Placed, split: Split, max_frac: float) -> None:
    """A rectangle (webcam, alert, chat box) over at most ``max_frac`` of the box's width."""
    bw, bh = box.x1 - box.x0, box.y1 - box.y0
    ow = max(2, int(bw * rng.uniform(0.08, max_frac)))
    oh = max(2, int(bh * rng.uniform(0.4, 1.6)))
    side = rng.integers(0, 2)
    x = box.x0 - int(ow * rng.uniform(0, 0.5)) if side == 0 else box.x1 - int(ow * rng.uniform(0.5, 1))
    y = box.y0 + int(bh * rng.uniform(-0.3, 0.6))
    r = rng.random()
    if r < 0.4:
        patch = bg_natural(rng, ow, oh, split).astype(np.float32)
    elif r < 0.7:
        patch = np.full((oh, ow, 3), rand_colour(rng, 0, 80), np.float32)
    else:
        patch = bg_noise(rng, ow, oh).astype(np.float32)
    paste(frame, patch, np.ones((oh, ow), np.float32) * float(rng.uniform(0.8, 1.0)), x, y)


def draw_scoreboard(frame: F32, rng: Rng, split: Split, opacity: float) -> None:
    """The Tab scoreboard: a large dark translucent panel with two teams of five rows, names and numbers.

    ``opacity`` is how much of what is behind (the scene, a banner) the panel hides; the team rows
    hide 30% more (a banner behind shows at about ``0.7 * (1 - opacity)``), names and numbers all.
    """
    H, W = frame.shape[:2]
    x0, x1 = W * float(rng.uniform(0.03, 0.1)), W * float(rng.uniform(0.88, 0.97))
    y0, y1 = H * float(rng.uniform(0.06, 0.15)), H * float(rng.uniform(0.84, 0.94))
    panel = (float(rng.uniform(15, 45)), float(rng.uniform(12, 35)), float(rng.uniform(8, 30)))  # BGR, dark blue
    fill_rect(frame, x0, y0, x1, y1, panel, opacity)
    stats_x = x0 + (x1 - x0) * float(rng.uniform(0.55, 0.72))  # the right part: hero stats / portrait
    if rng.random() < 0.6:
        pw, ph = int(x1 - stats_x - W * 0.02), int((y1 - y0) * 0.8)
        if pw > 4 and ph > 4:
            portrait = bg_natural(rng, pw, ph, split).astype(np.float32)
            paste(frame, portrait, np.full((ph, pw), opacity * 0.9, np.float32), int(stats_x + W * 0.01),
                  int(y0 + (y1 - y0) * 0.1))
    row_h = (y1 - y0) * 0.084
    team_gap = (y1 - y0) * float(rng.uniform(0.02, 0.06))
    tints = ((190, 120, 50), (60, 60, 200)) if rng.random() < 0.8 else ((120, 120, 120), (90, 90, 90))
    rows = [(team, y0 + (y1 - y0) * 0.08 + team * (5 * row_h + team_gap) + r * row_h)
            for team in range(2) for r in range(5)]
    for team, ry in rows:
        shade = float(rng.uniform(0.35, 0.6))
        fill_rect(frame, x0 + W * 0.01, ry, stats_x - W * 0.01, ry + row_h * 0.88,
                  (tints[team][0] * shade, tints[team][1] * shade, tints[team][2] * shade), 0.3)
    img = to_u8(frame)
    font = hershey(split)
    fs = H / 1100
    lw = max(1, H // 540)
    px0 = int(x0 + W * 0.015)
    for _team, ry in rows:
        cv2.rectangle(img, (px0, int(ry + row_h * 0.08)), (px0 + int(row_h * 0.75), int(ry + row_h * 0.8)),
                      rand_colour(rng, 40, 230), -1)
        ty = int(ry + row_h * 0.62)
        cv2.putText(img, random_name(rng, 4, 12), (px0 + int(row_h), ty), font, fs, (235, 235, 235), lw,
                    cv2.LINE_AA)
        nums = "   ".join(str(int(v)) for v in rng.integers(0, 30, size=3))
        big_nums = "   ".join(f"{int(v):,}" for v in rng.integers(0, 15000, size=3))
        cv2.putText(img, f"{nums}   {big_nums}", (int(x0 + (stats_x - x0) * 0.42), ty), font, fs,
                    (220, 220, 220), lw, cv2.LINE_AA)
    if rng.random() < 0.7:  # header: mode, map, time
        cv2.putText(img, f"{random_name(rng, 5, 9)}  |  {random_name(rng, 4, 8)}  {rng.integers(0, 20)}:"
                    f"{rng.integers(10, 60)}", (int(x0 + W * 0.015), int(y0 + (y1 - y0) * 0.05)), font, fs,
                    (200, 200, 200), lw, cv2.LINE_AA)
    frame[:] = img
