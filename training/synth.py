# mypy: disable-error-code="assignment,return-value,no-any-return,call-overload,arg-type,attr-defined"
# (numpy/OpenCV stub unions make array code noisy to type; the arrays are checked by the tests)
"""Seeded synthetic Overwatch-like frames with and without an end-of-match banner.

Every sample is a full 16:9 frame at a capture resolution, JPEG-encoded like
the capture service sends it, so training sees the same pixels as inference
(``services.common.vision.preprocess_bytes``). A sample is fully determined by
``(seed, index, split)``: ``render_sample`` draws all its randomness from
``numpy.random.default_rng([seed, index])``.

Two splits use disjoint fonts and disjoint natural-image backgrounds (plus one
background family each that the other never sees), so the held-out evaluation
measures generalisation to unseen typography and scenes, not memorisation.

Needs numpy, OpenCV and Pillow (no torch).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

GENERATOR_VERSION = 5

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Rng = np.random.Generator

# npm @fontsource packages (pinned in NPM_FONTS) are installed here by ``install_npm_fonts``.
NPM_FONT_PREFIX = Path(__file__).resolve().parent / "cache" / "fonts"
NPM_FONTS = (
    "@fontsource/oswald@5.3.0",
    "@fontsource/barlow-condensed@5.3.0",
    "@fontsource/anton@5.3.0",
    "@fontsource/roboto-condensed@5.3.0",
    "@fontsource/teko@5.3.0",
    "@fontsource/fjalla-one@5.3.0",
    "@fontsource/saira-condensed@5.3.0",
    "@fontsource/big-shoulders-display@5.3.0",
)
FONT_DIRS = (
    *(NPM_FONT_PREFIX / "node_modules" / pkg.rsplit("@", 1)[0] / "files" for pkg in NPM_FONTS),
    Path("/usr/share/fonts/opentype/bebas-neue"),
    Path("/usr/share/fonts/truetype/bebas-neue"),
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/dejavu"),
)

OUTCOME_WORDS: dict[str, tuple[str, str]] = {
    "victory": ("VICTORY!", "勝利！"),
    "defeat": ("DEFEAT", "敗北"),
    "draw": ("DRAW", "引き分け"),
}

# Big centred texts the game shows that are NOT an end-of-match banner.
NEGATIVE_TEXTS = (
    "OVERTIME", "ROUND 2", "ROUND 3", "PLAY OF THE GAME", "DOUBLE KILL", "TRIPLE KILL",
    "QUADRUPLE KILL", "TEAM KILL", "ON FIRE", "ELIMINATED", "OBJECTIVE CAPTURED",
    "POINT CAPTURED", "ATTACK", "DEFEND", "ESCORT THE PAYLOAD", "STOP THE PAYLOAD",
    "CAPTURE THE OBJECTIVE", "SUDDEN DEATH", "VICTORIES", "MATCH COMPLETE", "YOU DIED",
    "RESPAWNING", "ASSEMBLE YOUR TEAM", "PREPARE TO ATTACK", "FINAL ROUND", "SWITCHING SIDES",
    "MVP", "BLOCKED", "SHUTDOWN", "COMPETITIVE", "HERO SELECT", "MATCH POINT", "CONTESTED",
)
NEGATIVE_TEXTS_JA = ("オーバータイム", "ラウンド2", "攻撃", "防衛", "目標を確保", "キル", "プレイ・オブ・ザ・ゲーム")

# Colours are RGB.
GOLD = ((200, 245), (165, 200), (30, 60))
RED = ((225, 255), (20, 60), (20, 60))
DRAW_COLOURS = (((215, 255), (215, 255), (215, 255)), ((170, 210), (185, 220), (200, 235)))
OTHER_COLOURS = (
    ((230, 255), (230, 255), (230, 255)),
    ((40, 90), (170, 230), (230, 255)),
    ((200, 245), (165, 200), (30, 60)),
    ((225, 255), (20, 60), (20, 60)),
    ((230, 255), (110, 160), (20, 50)),
)

CAPTURE_SIZES = (
    (640, 360), (640, 360), (640, 360), (640, 360), (640, 360),
    (960, 540), (1280, 720), (800, 450), (854, 480), (1024, 576), (1600, 900), (1920, 1080),
)

# per 10 samples: 4 none, 2 of each outcome
CLASS_CYCLE = ("none", "victory", "none", "defeat", "none", "draw", "none", "victory", "defeat", "draw")


@dataclass(frozen=True)
class FontSpec:
    file: str
    index: int = 0
    shear: tuple[float, float] = (0.12, 0.3)  # extra italic shear (upright fonts)


@dataclass(frozen=True)
class Split:
    name: str
    latin: tuple[FontSpec, ...]
    cjk: tuple[FontSpec, ...]
    natural: tuple[str, ...]
    backgrounds: tuple[str, ...]
    hud_font: FontSpec = field(default_factory=lambda: FontSpec("DejaVuSans-Bold.ttf"))


TRAIN = Split(
    name="train",
    latin=(
        FontSpec("BebasNeue-Bold.otf"),
        FontSpec("BebasNeue-Regular.otf"),
        FontSpec("DejaVuSansCondensed-BoldOblique.ttf", shear=(0.0, 0.15)),
        FontSpec("DejaVuSans-Bold.ttf"),
        FontSpec("oswald-latin-700-normal.woff"),
        FontSpec("barlow-condensed-latin-800-italic.woff", shear=(0.0, 0.12)),
        FontSpec("barlow-condensed-latin-600-italic.woff", shear=(0.0, 0.12)),
        FontSpec("anton-latin-400-normal.woff"),
        FontSpec("roboto-condensed-latin-700-italic.woff", shear=(0.0, 0.12)),
        FontSpec("DejaVuSerifCondensed-BoldItalic.ttf", shear=(0.0, 0.12)),
        FontSpec("big-shoulders-display-latin-800-normal.woff"),
    ),
    cjk=(FontSpec("NotoSansCJK-Bold.ttc"), FontSpec("NotoSerifCJK-Regular.ttc")),
    natural=(
        "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
        "hubble_deep_field.jpg", "grass.png", "brick.png", "camera.png", "coins.png", "text.png",
    ),
    backgrounds=("scene", "scene", "noise", "natural", "natural", "shapes"),
)

EVAL = Split(
    name="eval",
    latin=(
        FontSpec("BebasNeue-Book.otf"),
        FontSpec("DejaVuSansCondensed-Bold.ttf"),
        FontSpec("teko-latin-600-normal.woff"),
        FontSpec("fjalla-one-latin-400-normal.woff"),
        FontSpec("saira-condensed-latin-700-normal.woff"),
    ),
    cjk=(FontSpec("NotoSerifCJK-Bold.ttc"), FontSpec("NotoSansCJK-Regular.ttc")),
    natural=("motorcycle_right.png", "retina.jpg", "ihc.png", "gravel.png", "moon.png", "page.png"),
    backgrounds=("scene", "noise", "natural", "natural", "mosaic"),
    hud_font=FontSpec("DejaVuSansCondensed.ttf"),
)

SPLITS = {"train": TRAIN, "eval": EVAL}


class FontMissingError(RuntimeError):
    pass


def _find_font(name: str) -> Path | None:
    for d in FONT_DIRS:
        p = d / name
        if p.exists():
            return p
    return None


def font_file(name: str) -> Path:
    p = _find_font(name)
    if p is None:
        raise FontMissingError(
            f"font {name!r} not found: install the Debian packages fonts-bebas-neue, fonts-noto-cjk and "
            f"fonts-dejavu-core, and the npm fonts with `python -m training.synth --install-fonts`"
        )
    return p


def install_npm_fonts() -> None:
    """``npm install`` the pinned @fontsource packages into ``training/cache/fonts`` (git-ignored)."""
    import subprocess

    NPM_FONT_PREFIX.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(NPM_FONT_PREFIX), *NPM_FONTS]
    subprocess.run(cmd, check=True)
    _usable.cache_clear()


@functools.lru_cache(maxsize=64)
def _usable(fonts: tuple[FontSpec, ...]) -> tuple[FontSpec, ...]:
    """The installed fonts of a list (npm fonts may be missing where only the runtime is installed)."""
    found = tuple(f for f in fonts if _find_font(f.file) is not None)
    if not found:
        font_file(fonts[0].file)  # raises with the install hint
    return found


def fonts_in_use(split: Split) -> list[str]:
    return [f.file for f in (*_usable(split.latin), *_usable(split.cjk))]


@functools.lru_cache(maxsize=512)
def _font(name: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_file(name)), size=max(6, size), index=index)


def ensure_fonts(*splits: Split) -> None:
    """Check the fonts of ``splits``; install the npm ones once if missing (Debian ones must be there)."""
    try:
        for sp in splits:
            check_fonts(sp)
    except FontMissingError:
        print("installing the pinned npm fonts into training/cache/fonts", flush=True)
        install_npm_fonts()
        for sp in splits:
            check_fonts(sp)


def check_fonts(split: Split) -> None:
    """Raise :class:`FontMissingError` unless every font of ``split`` is installed."""
    for spec in (*split.latin, *split.cjk, split.hud_font):
        font_file(spec.file)


# ---------------------------------------------------------------- backgrounds


def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "data"
    return d if d.is_dir() else None


@functools.lru_cache(maxsize=64)
def _natural(name: str) -> U8 | None:
    d = _skimage_data_dir()
    if d is None or not (d / name).exists():
        return None
    img = cv2.imread(str(d / name), cv2.IMREAD_COLOR)
    return None if img is None else np.ascontiguousarray(img)


def natural_available(split: Split) -> list[str]:
    return [n for n in split.natural if _natural(n) is not None]


def _rand_colour(rng: Rng, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _value_noise(rng: Rng, w: int, h: int, octaves: int = 4, channels: int = 1) -> F32:
    """Smooth multi-octave noise in [0, 1], shape (h, w) or (h, w, channels); built at 1/4 size."""
    sw, sh = max(8, w // 4), max(8, h // 4)
    out = np.zeros((sh, sw, channels), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        small = rng.random((max(2, cells * h // w), cells, channels), dtype=np.float32)
        out += amp * cv2.resize(small, (sw, sh), interpolation=cv2.INTER_CUBIC).reshape(sh, sw, channels)
        total += amp
        amp *= 0.5
    big = cv2.resize(out / total, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, channels)
    big = np.clip(big, 0, 1)
    return big[:, :, 0] if channels == 1 else big


def _bg_scene(rng: Rng, w: int, h: int) -> U8:
    """Sky gradient, horizon, ground, building blocks, props and light blobs."""
    col = np.zeros((h, 1, 3), np.float32)
    horizon = int(h * rng.uniform(0.3, 0.7))
    top, bottom = np.array(_rand_colour(rng, 60, 255), np.float32), np.array(_rand_colour(rng, 20, 200), np.float32)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    col[:horizon] = top * (1 - t) + bottom * t
    g0, g1 = np.array(_rand_colour(rng, 20, 180), np.float32), np.array(_rand_colour(rng, 10, 120), np.float32)
    t2 = np.linspace(0, 1, h - horizon, dtype=np.float32)[:, None, None]
    col[horizon:] = g0 * (1 - t2) + g1 * t2
    tex = _value_noise(rng, w, h)
    shade = cv2.convertScaleAbs(tex, alpha=0.6 * 255, beta=0.7 * 255)  # 0.7..1.3 in 1/255 steps
    canvas = cv2.multiply(np.broadcast_to(col.astype(np.uint8), (h, w, 3)).copy(), cv2.merge([shade] * 3),
                          scale=1 / 255)
    for _ in range(int(rng.integers(3, 14))):
        bw, bh = int(w * rng.uniform(0.05, 0.35)), int(h * rng.uniform(0.1, 0.6))
        x = int(rng.integers(-bw // 2, w))
        y = horizon - bh + int(h * rng.uniform(-0.05, 0.25))
        col = _rand_colour(rng, 20, 230)
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + bw, y + bh), col, -1)
        else:
            pts = np.array([[x, y + bh], [x + bw, y + bh], [x + bw - int(bw * rng.uniform(0, 0.4)), y],
                            [x + int(bw * rng.uniform(0, 0.4)), y + int(bh * rng.uniform(0, 0.3))]], np.int32)
            cv2.fillPoly(canvas, [pts], col)
        if rng.random() < 0.5:  # windows / panels
            for _ in range(int(rng.integers(2, 8))):
                px, py = x + int(rng.uniform(0, bw)), y + int(rng.uniform(0, bh))
                cv2.rectangle(canvas, (px, py), (px + int(w * 0.02), py + int(h * 0.03)), _rand_colour(rng), -1)
    for _ in range(int(rng.integers(0, 6))):  # characters / props
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(h * 0.3, h))
        r = int(h * rng.uniform(0.02, 0.12))
        cv2.ellipse(canvas, (cx, cy), (r, int(r * rng.uniform(1, 2.5))), float(rng.uniform(0, 180)), 0, 360,
                    _rand_colour(rng), -1, cv2.LINE_AA)
    if rng.random() < 0.6:  # lights
        lw_, lh_ = max(8, w // 4), max(8, h // 4)
        light = np.zeros((lh_, lw_), np.float32)
        for _ in range(int(rng.integers(1, 5))):
            cv2.circle(light, (int(rng.uniform(0, lw_)), int(rng.uniform(0, lh_))), int(lh_ * rng.uniform(0.05, 0.3)),
                       float(rng.uniform(0.2, 0.8)), -1)
        light = cv2.resize(cv2.GaussianBlur(light, (0, 0), lh_ * 0.05), (w, h), interpolation=cv2.INTER_LINEAR)
        col = np.array(_rand_colour(rng, 150, 256), np.float32)
        canvas = np.clip(canvas + light[:, :, None] * col, 0, 255).astype(np.uint8)
    return canvas


def _bg_noise(rng: Rng, w: int, h: int) -> U8:
    img = _value_noise(rng, w, h, octaves=int(rng.integers(2, 6)), channels=3)
    base = np.array(_rand_colour(rng, 0, 200), np.float32)
    span = np.array(_rand_colour(rng, 30, 256), np.float32)
    return np.clip(base + img * span, 0, 255).astype(np.uint8)


def _bg_shapes(rng: Rng, w: int, h: int) -> U8:
    canvas = np.full((h, w, 3), _rand_colour(rng), np.uint8)
    for _ in range(int(rng.integers(10, 40))):
        kind = rng.integers(0, 4)
        col = _rand_colour(rng)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        s = int(h * rng.uniform(0.02, 0.3))
        if kind == 0:
            cv2.rectangle(canvas, (x, y), (x + s, y + int(s * rng.uniform(0.3, 3))), col, -1)
        elif kind == 1:
            cv2.circle(canvas, (x, y), s, col, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.line(canvas, (x, y), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), col,
                     int(rng.integers(1, 8)), cv2.LINE_AA)
        else:
            pts = rng.integers(0, [w, h], size=(3, 2)).astype(np.int32)
            cv2.fillPoly(canvas, [pts], col, cv2.LINE_AA)
    return canvas


def _crop_natural(rng: Rng, img: U8, w: int, h: int) -> U8:
    ih, iw = img.shape[:2]
    scale = rng.uniform(0.4, 1.0)
    cw = max(16, int(min(iw, ih * 16 / 9) * scale))
    ch = max(9, int(cw * 9 / 16))
    x = int(rng.integers(0, max(1, iw - cw + 1)))
    y = int(rng.integers(0, max(1, ih - ch + 1)))
    crop = img[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_LINEAR)
    gain = rng.uniform(0.6, 1.3, size=3).astype(np.float32)
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _bg_natural(rng: Rng, w: int, h: int, split: Split) -> U8:
    names = natural_available(split)
    if not names:
        return _bg_scene(rng, w, h)
    img = _natural(names[int(rng.integers(0, len(names)))])
    assert img is not None
    return _crop_natural(rng, img, w, h)


def _bg_mosaic(rng: Rng, w: int, h: int, split: Split) -> U8:
    """Held-out family: tiles of natural crops, noise and flat colour, softened."""
    out = np.zeros((h, w, 3), np.uint8)
    nx, ny = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    xs = np.linspace(0, w, nx + 1).astype(int)
    ys = np.linspace(0, h, ny + 1).astype(int)
    for i in range(nx):
        for j in range(ny):
            tw, th = xs[i + 1] - xs[i], ys[j + 1] - ys[j]
            r = rng.random()
            if r < 0.5:
                tile = _bg_natural(rng, tw, th, split)
            elif r < 0.8:
                tile = _bg_noise(rng, tw, th)
            else:
                tile = np.full((th, tw, 3), _rand_colour(rng), np.uint8)
            out[ys[j]:ys[j + 1], xs[i]:xs[i + 1]] = tile
    return cv2.GaussianBlur(out, (0, 0), max(0.5, h * 0.004))


def background(rng: Rng, w: int, h: int, split: Split) -> U8:
    bw, bh = (w, h) if w <= 960 else (960, 540)
    kind = split.backgrounds[int(rng.integers(0, len(split.backgrounds)))]
    if kind == "scene":
        img = _bg_scene(rng, bw, bh)
    elif kind == "noise":
        img = _bg_noise(rng, bw, bh)
    elif kind == "shapes":
        img = _bg_shapes(rng, bw, bh)
    elif kind == "mosaic":
        img = _bg_mosaic(rng, bw, bh, split)
    else:
        img = _bg_natural(rng, bw, bh, split)
    if rng.random() < 0.3:  # blend two scenes (depth, fog, particles)
        other = _bg_noise(rng, bw, bh) if rng.random() < 0.5 else _bg_scene(rng, bw, bh)
        a = float(rng.uniform(0.55, 0.85))
        img = cv2.addWeighted(img, a, other, 1 - a, 0.0)
    if (bw, bh) != (w, h):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


# ---------------------------------------------------------------- text


def _text_mask(text: str, spec: FontSpec, size: int, shear: float) -> F32:
    """White-on-black float mask of ``text`` (tightly cropped, italic sheared)."""
    font = _font(spec.file, spec.index, size)
    left, top, right, bottom = font.getbbox(text)
    pad = int(size * 0.15) + 2
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    extra = int(abs(shear) * th) + 2
    img = Image.new("L", (tw + extra, th), 0)
    ImageDraw.Draw(img).text((pad - left + extra, pad - top), text, fill=255, font=font)
    if shear:
        # x_src = x + shear * (y - th): top leans right
        img = img.transform(img.size, Image.Transform.AFFINE, (1, shear, -shear * th, 0, 1, 0),
                            resample=Image.Resampling.BILINEAR)
    m = np.asarray(img, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(m > 0.02)
    if len(xs) == 0:
        return m
    return m[max(0, ys.min() - 1): ys.max() + 2, max(0, xs.min() - 1): xs.max() + 2]


def _colour(rng: Rng, ranges: tuple[tuple[int, int], ...]) -> F32:
    return np.array([rng.uniform(lo, hi) for lo, hi in ranges], np.float32)


def _rgb2bgr(c: F32) -> F32:
    return c[::-1].copy()


def _paste(frame: F32, layer: F32, alpha: F32, x: int, y: int) -> None:
    """Alpha-blend ``layer`` (h,w,3) with ``alpha`` (h,w) onto ``frame`` at top-left (x, y), clipped."""
    h, w = alpha.shape
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - a) + layer[y0 - y:y1 - y, x0 - x:x1 - x] * a


def _add(frame: F32, layer: F32, x: int, y: int) -> None:
    h, w = layer.shape[:2]
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    frame[y0:y1, x0:x1] += layer[y0 - y:y1 - y, x0 - x:x1 - x]


@dataclass
class Placed:
    x0: int
    y0: int
    x1: int
    y1: int


def draw_styled_text(
    frame: F32,
    rng: Rng,
    text: str,
    spec: FontSpec,
    cap_h: float,
    centre: tuple[float, float],
    colour_rgb: F32,
    alpha: float = 1.0,
    glow: bool | None = None,
    max_w: float | None = None,
    keep: tuple[float, float, float, float] | None = None,
) -> Placed:
    """Banner-style text: fill gradient, optional outline and glow, italic. Returns its box."""
    size = max(8, int(cap_h * 1.35))
    shear = float(rng.uniform(*spec.shear))
    mask = _text_mask(text, spec, size, shear)
    mh, mw = mask.shape
    scale = cap_h / max(1, mh)
    if max_w is not None and mw * scale > max_w:
        scale = max_w / mw
    nw, nh = max(2, int(mw * scale)), max(2, int(mh * scale))
    mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.25:  # slightly condensed / stretched
        sx = float(rng.uniform(0.85, 1.1))
        nw = max(2, int(nw * sx))
        mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if keep is not None:  # cut banner: keep only a fraction of the text
        kx0, ky0, kx1, ky1 = keep
        cut = np.zeros_like(mask)
        cut[int(ky0 * nh):int(ky1 * nh), int(kx0 * nw):int(kx1 * nw)] = 1
        mask = mask * cut
    pad = max(4, int(nh * 0.6))
    big = np.zeros((nh + 2 * pad, nw + 2 * pad), np.float32)
    big[pad:pad + nh, pad:pad + nw] = mask
    x = int(centre[0] - nw / 2) - pad
    y = int(centre[1] - nh / 2) - pad
    col = _rgb2bgr(colour_rgb)
    # glow (screen-like additive light around the letters)
    if glow if glow is not None else rng.random() < 0.7:
        sigma = nh * float(rng.uniform(0.08, 0.3))
        g = cv2.GaussianBlur(big, (0, 0), sigma) * float(rng.uniform(0.3, 0.9)) * alpha
        gcol = col * float(rng.uniform(0.6, 1.0))
        _add(frame, g[:, :, None] * gcol[None, None, :], x, y)
    # outline
    if rng.random() < 0.4:
        k = max(1, int(nh * rng.uniform(0.02, 0.06)))
        outline = cv2.dilate(big, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
        dark = col * float(rng.uniform(0.0, 0.35))
        _paste(frame, np.broadcast_to(dark, (*big.shape, 3)).astype(np.float32), outline * alpha, x, y)
    # fill with a vertical gradient
    top = np.clip(col * float(rng.uniform(1.0, 1.2)), 0, 255)
    bot = col * float(rng.uniform(0.75, 1.0))
    t = np.linspace(0, 1, big.shape[0], dtype=np.float32)[:, None, None]
    fill = (top * (1 - t) + bot * t) * np.ones((1, big.shape[1], 1), np.float32)
    _paste(frame, fill.astype(np.float32), big * alpha, x, y)
    return Placed(x + pad, y + pad, x + pad + nw, y + pad + nh)


# ---------------------------------------------------------------- HUD, streak, occluders


def draw_hud(frame: F32, rng: Rng, split: Split, crosshair: bool = True) -> None:
    H, W = frame.shape[:2]
    img = np.clip(frame, 0, 255).astype(np.uint8)
    lw = max(1, H // 360)
    white = (235, 235, 235)
    if crosshair and rng.random() < 0.7:
        cx, cy, r = W // 2, H // 2, max(3, int(H * rng.uniform(0.008, 0.02)))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, white, lw, cv2.LINE_AA)
        else:
            cv2.line(img, (cx - r, cy), (cx + r, cy), white, lw)
            cv2.line(img, (cx, cy - r), (cx, cy + r), white, lw)
    if rng.random() < 0.7:  # health bar bottom-left
        x, y = int(W * 0.05), int(H * 0.88)
        for i in range(int(rng.integers(4, 12))):
            bx = x + i * int(W * 0.012)
            cv2.rectangle(img, (bx, y), (bx + int(W * 0.009), y + int(H * 0.025)),
                          white if rng.random() < 0.8 else (60, 200, 255), -1)
    if rng.random() < 0.7:  # abilities bottom-right
        for i in range(int(rng.integers(2, 5))):
            c = (int(W * (0.75 + 0.05 * i)), int(H * 0.9))
            cv2.circle(img, c, int(H * 0.025), (200, 200, 200), lw, cv2.LINE_AA)
    if rng.random() < 0.5:  # objective / timer top-centre
        cx = W // 2
        cv2.rectangle(img, (cx - int(W * 0.08), int(H * 0.04)), (cx + int(W * 0.08), int(H * 0.07)), (40, 40, 40), -1)
        cv2.rectangle(img, (cx - int(W * 0.08), int(H * 0.04)),
                      (cx - int(W * 0.08) + int(W * 0.16 * rng.uniform(0, 1)), int(H * 0.07)), (255, 200, 80), -1)
    font = cv2.FONT_HERSHEY_SIMPLEX if split.name == "train" else cv2.FONT_HERSHEY_DUPLEX
    fs = H / 900
    if rng.random() < 0.6:  # kill feed top-right
        for i in range(int(rng.integers(1, 5))):
            name = "".join(chr(int(c)) for c in rng.integers(65, 91, size=int(rng.integers(4, 10))))
            cv2.putText(img, f"{name} > {name[::-1]}", (int(W * 0.72), int(H * (0.06 + 0.04 * i))), font, fs,
                        white, lw, cv2.LINE_AA)
    if rng.random() < 0.3:  # a timer or a score
        cv2.putText(img, f"{rng.integers(0, 10)}:{rng.integers(10, 60)}", (W // 2 - int(W * 0.03), int(H * 0.1)),
                    font, fs * 1.5, white, lw, cv2.LINE_AA)
    frame[:] = img


def draw_streak(frame: F32, rng: Rng, cy: float, strength: float, colour_rgb: F32 | None = None) -> None:
    """The bright horizontal red/gold streak of the banner's entry."""
    H, W = frame.shape[:2]
    if colour_rgb is None:
        colour_rgb = _colour(rng, GOLD if rng.random() < 0.5 else RED)
    half = H * float(rng.uniform(0.01, 0.06))
    ys = np.arange(H, dtype=np.float32)
    prof = np.exp(-0.5 * ((ys - cy) / half) ** 2)
    span = float(rng.uniform(0.3, 1.0))
    xs = np.arange(W, dtype=np.float32)
    xprof = np.clip(1.3 - np.abs(xs - W / 2) / (W * span / 2), 0, 1)
    layer = prof[:, None] * xprof[None, :] * strength
    col = _rgb2bgr(colour_rgb)
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
        patch = _bg_natural(rng, ow, oh, split).astype(np.float32)
    elif r < 0.7:
        patch = np.full((oh, ow, 3), _rand_colour(rng, 0, 80), np.float32)
    else:
        patch = _bg_noise(rng, ow, oh).astype(np.float32)
    _paste(frame, patch, np.ones((oh, ow), np.float32) * float(rng.uniform(0.8, 1.0)), x, y)


# ---------------------------------------------------------------- frames


def outcome_colour(rng: Rng, label: str) -> F32:
    if label == "victory":
        return _colour(rng, GOLD)
    if label == "defeat":
        return _colour(rng, RED)
    return _colour(rng, DRAW_COLOURS[int(rng.integers(0, len(DRAW_COLOURS)))])


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
) -> Placed:
    """The end-of-match banner for ``label`` where the game puts it (with jitter)."""
    H, W = frame.shape[:2]
    ja = (rng.random() < 0.3) if japanese is None else japanese
    text = OUTCOME_WORDS[label][1 if ja else 0]
    fonts = _usable(split.cjk if ja else split.latin)
    spec = fonts[int(rng.integers(0, len(fonts)))]
    if ja:
        spec = FontSpec(spec.file, spec.index, (0.05, 0.25))
    cap = H * (cap_frac if cap_frac is not None else float(rng.uniform(0.095, 0.15)))
    with_score = (rng.random() < (0.5 if label != "draw" else 0.3)) if score is None else score
    explicit = centre is not None
    if centre is None:
        centre = (W * float(rng.uniform(0.485, 0.535)), H * float(rng.uniform(0.41, 0.47)))
    cx, cy = centre
    if with_score and not explicit:
        cy -= H * 0.02
    box = draw_styled_text(frame, rng, text, spec, cap, (cx, cy), outcome_colour(rng, label), alpha=alpha,
                           max_w=W * 0.3, keep=keep)
    if with_score and keep is None:
        a, b = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        sfonts = _usable(split.latin)
        sfont = sfonts[int(rng.integers(0, len(sfonts)))]
        sc = _colour(rng, ((220, 255), (220, 255), (220, 255)))
        draw_styled_text(frame, rng, f"{a} | {b}", sfont, cap * float(rng.uniform(0.35, 0.5)),
                         (cx + float(rng.uniform(-0.01, 0.01)) * W, box.y1 + cap * float(rng.uniform(0.45, 0.7))),
                         sc, alpha=alpha, glow=False)
    return box


def _negative(frame: F32, rng: Rng, split: Split) -> str:
    """Draw a hard negative (or nothing) on ``frame``; returns its kind."""
    H, W = frame.shape[:2]
    r = rng.random()
    if r < 0.22:
        return "gameplay"
    if r < 0.55:  # other big centred text in banner style
        ja = rng.random() < 0.2
        words = NEGATIVE_TEXTS_JA if ja else NEGATIVE_TEXTS
        text = words[int(rng.integers(0, len(words)))]
        fonts = _usable(split.cjk if ja else split.latin)
        spec = fonts[int(rng.integers(0, len(fonts)))]
        colours = OTHER_COLOURS[int(rng.integers(0, len(OTHER_COLOURS)))]
        cy = H * float(rng.uniform(0.3, 0.6))
        box = draw_styled_text(frame, rng, text, spec, H * float(rng.uniform(0.05, 0.14)),
                               (W * float(rng.uniform(0.46, 0.56)), cy), _colour(rng, colours),
                               alpha=float(rng.uniform(0.7, 1.0)), max_w=W * 0.6)
        if rng.random() < 0.3:
            draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.2, 0.8)))
        if rng.random() < 0.3:
            sub = NEGATIVE_TEXTS[int(rng.integers(0, len(NEGATIVE_TEXTS)))]
            draw_styled_text(frame, rng, sub, _usable(split.latin)[0], H * 0.035, (W * 0.5, box.y1 + H * 0.04),
                             _colour(rng, OTHER_COLOURS[0]), glow=False, max_w=W * 0.5)
        return "other_text"
    if r < 0.7:  # banner colours and light without text
        if rng.random() < 0.6:
            draw_streak(frame, rng, H * float(rng.uniform(0.35, 0.55)), float(rng.uniform(0.3, 1.0)))
        if rng.random() < 0.5:
            draw_flash(frame, float(rng.uniform(0.1, 0.6)))
        if rng.random() < 0.5:
            col = _rgb2bgr(_colour(rng, GOLD if rng.random() < 0.5 else RED))
            x0, y0 = int(W * rng.uniform(0.3, 0.5)), int(H * rng.uniform(0.35, 0.5))
            w, h = int(W * rng.uniform(0.05, 0.3)), int(H * rng.uniform(0.02, 0.12))
            blob = np.ones((h, w), np.float32)
            _paste(frame, np.broadcast_to(col, (h, w, 3)).astype(np.float32), blob * float(rng.uniform(0.5, 1)), x0, y0)
        return "colours"
    if r < 0.85:  # an outcome word far from the banner position, or tiny
        label = ("victory", "defeat", "draw")[int(rng.integers(0, 3))]
        ja = rng.random() < 0.3
        text = OUTCOME_WORDS[label][1 if ja else 0]
        spec = _usable(split.cjk if ja else split.latin)[0]
        if rng.random() < 0.5:
            cy = H * float(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.75, 0.95)]))
            cx = W * float(rng.uniform(0.15, 0.85))
            cap = H * float(rng.uniform(0.04, 0.12))
        else:
            cx = W * float(rng.choice([rng.uniform(0.05, 0.25), rng.uniform(0.78, 0.95)]))
            cy = H * float(rng.uniform(0.1, 0.9))
            cap = H * float(rng.uniform(0.03, 0.08))
        draw_styled_text(frame, rng, text, spec, cap, (cx, cy), outcome_colour(rng, label), max_w=W * 0.2)
        return "word_elsewhere"
    # cut banner: only a small part of the outcome text is visible
    label = ("victory", "defeat", "draw")[int(rng.integers(0, 3))]
    if rng.random() < 0.5:
        x0 = float(rng.uniform(0, 0.75))
        keep = (x0, 0.0, x0 + float(rng.uniform(0.12, 0.25)), 1.0)
    else:
        y0 = float(rng.choice([0.0, 0.8]))
        keep = (0.0, y0, 1.0, y0 + 0.2)
    draw_banner(frame, rng, label, split, keep=keep)
    return "cut_banner"


def work_size(w: int, h: int) -> tuple[int, int]:
    """Frames are drawn at most 960 wide, then scaled to the capture size (cheap, and the ROI is downscaled anyway)."""
    if w <= 960:
        return w, h
    return 960, round(960 * h / w)


def ensure_contrast(frame: F32, rng: Rng, colour_rgb: F32) -> None:
    """Shade the scene behind the banner when it is so close to the text colour the text would be unreadable.

    The real game keeps its banner readable; a washed-out synthetic scene would
    only teach label noise.
    """
    H, W = frame.shape[:2]
    x0, x1, y0, y1 = int(W * 0.36), int(W * 0.66), int(H * 0.33), int(H * 0.58)
    region = frame[y0:y1, x0:x1]
    col = _rgb2bgr(colour_rgb)
    dist = float(np.abs(region.reshape(-1, 3).mean(axis=0) - col).mean())
    lum_r, lum_c = float(region.mean()), float(col.mean())
    if dist > 70 and abs(lum_r - lum_c) > 40 and float(region.std()) < 60:
        return
    shade_centre(frame, rng)


def shade_centre(frame: F32, rng: Rng) -> None:
    """Darken the middle of the frame softly (also done to ``none`` frames, so it is no shortcut)."""
    H, W = frame.shape[:2]
    ys = np.linspace(-1, 1, H, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    shade = np.exp(-((xs / 0.35) ** 2 + ((ys + 0.1) / 0.3) ** 2))
    k = float(rng.uniform(0.45, 0.7))
    frame *= (1 - k * shade)[:, :, None]


def label_for_index(index: int) -> str:
    return CLASS_CYCLE[index % len(CLASS_CYCLE)]


def finish_frame(frame: F32, rng: Rng, w: int, h: int, quality: int | None = None) -> tuple[bytes, int, int]:
    """Global jitter, blur, noise, then JPEG like the capture (q80 most often)."""
    out = np.clip(frame, 0, 255).astype(np.uint8)
    if (out.shape[1], out.shape[0]) != (w, h):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.8:
        gain = rng.uniform(0.92, 1.08, size=3)
        contrast = float(rng.uniform(0.75, 1.2))
        bright = float(rng.uniform(-30, 25))
        x = np.arange(256, dtype=np.float64)
        lut = np.stack([np.clip(((x - 128) * contrast + 128 + bright) * g, 0, 255) for g in gain], axis=1)
        out = cv2.LUT(out, lut.astype(np.uint8).reshape(256, 1, 3))
    r = rng.random()
    if r < 0.15:
        k = int(rng.integers(3, max(4, w // 90)))
        out = cv2.blur(out, (k, 1))
    elif r < 0.25:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.5)) * w / 640)
    if rng.random() < 0.2:
        noise = rng.standard_normal(size=(h, w, 1), dtype=np.float32) * float(rng.uniform(2, 8))
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:  # recompression: an earlier lossy step (stream encode, scaling)
        q0 = int(rng.integers(40, 90))
        ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q0])
        out = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    if quality is None:
        quality = 80 if rng.random() < 0.5 else int(rng.integers(55, 96))
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encode failed")
    return enc.tobytes(), w, h


def render_sample(
    seed: int, index: int, split: Split = TRAIN, label: str | None = None
) -> tuple[bytes, int, int, dict[str, Any]]:
    """One JPEG frame. Returns ``(jpeg_bytes, width, height, info)``; ``info['label']`` is the class."""
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION])
    label = label or label_for_index(index)
    w, h = CAPTURE_SIZES[int(rng.integers(0, len(CAPTURE_SIZES)))]
    fw, fh = work_size(w, h)
    frame = background(rng, fw, fh, split).astype(np.float32)
    outcome = label != "none"
    draw_hud(frame, rng, split, crosshair=not outcome or rng.random() < 0.3)
    info: dict[str, Any] = {"label": label, "width": w, "height": h}
    if outcome:
        ensure_contrast(frame, rng, outcome_colour(np.random.default_rng([seed, index, 7]), label))
        entry = rng.random() < 0.25
        alpha = float(rng.uniform(0.8, 1.0)) if entry else float(rng.uniform(0.85, 1.0))
        box = draw_banner(frame, rng, label, split, alpha=alpha)
        if entry:
            draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.2, 0.6)))
            if rng.random() < 0.5:
                draw_flash(frame, float(rng.uniform(0.05, 0.25)))
        if rng.random() < 0.15:
            draw_occluder(frame, rng, box, split, max_frac=0.25)
        info["kind"] = "entry" if entry else "banner"
    else:
        if rng.random() < 0.3:
            shade_centre(frame, rng)
        info["kind"] = _negative(frame, rng, split)
        if rng.random() < 0.1:
            box = Placed(int(fw * 0.4), int(fh * 0.38), int(fw * 0.62), int(fh * 0.52))
            draw_occluder(frame, rng, box, split, max_frac=0.5)
    data, w, h = finish_frame(frame, rng, w, h)
    return data, w, h, info


# ---------------------------------------------------------------- extra hard training examples

HARD_VERSION = 1
BANNER_STYLE_COLOURS = (GOLD, RED, *DRAW_COLOURS, *OTHER_COLOURS)
# per 20 hard samples: 11 none (other texts styled like the banner), 9 outcomes (faint, DRAW-heavy)
HARD_CYCLE = ("none", "draw", "none", "victory", "none", "draw", "none", "defeat", "none", "draw",
              "none", "draw", "none", "victory", "none", "draw", "none", "defeat", "none", "none")


def render_hard_sample(seed: int, index: int, split: Split = TRAIN) -> tuple[bytes, int, int, dict[str, Any]]:
    """Training-only hard examples (``render_sample`` and so the held-out set are unchanged).

    ``none``: other big texts (callouts, round and objective announcements)
    drawn exactly where and how the end-of-match banner is drawn (same size,
    position, italic fonts, gold/red/white/silver colours, entry streak and
    flash), so only the word itself tells them apart. Outcomes: banners in low
    contrast (faded in, washed out by a flash or streak, on busy scenes),
    mostly the white/silver DRAW, which is the easiest to lose.
    """
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION, 1000 + HARD_VERSION])
    label = HARD_CYCLE[index % len(HARD_CYCLE)]
    w, h = CAPTURE_SIZES[int(rng.integers(0, len(CAPTURE_SIZES)))]
    fw, fh = work_size(w, h)
    frame = background(rng, fw, fh, split).astype(np.float32)
    draw_hud(frame, rng, split, crosshair=rng.random() < 0.4)
    info: dict[str, Any] = {"label": label, "width": w, "height": h}
    if rng.random() < 0.5:
        shade_centre(frame, rng)
    if label == "none":
        ja = rng.random() < 0.25
        words = NEGATIVE_TEXTS_JA if ja else NEGATIVE_TEXTS
        text = words[int(rng.integers(0, len(words)))]
        fonts = _usable(split.cjk if ja else split.latin)
        spec = fonts[int(rng.integers(0, len(fonts)))]
        if ja:
            spec = FontSpec(spec.file, spec.index, (0.05, 0.25))
        colours = BANNER_STYLE_COLOURS[int(rng.integers(0, len(BANNER_STYLE_COLOURS)))]
        cx, cy = fw * float(rng.uniform(0.485, 0.535)), fh * float(rng.uniform(0.39, 0.47))
        box = draw_styled_text(frame, rng, text, spec, fh * float(rng.uniform(0.08, 0.16)), (cx, cy),
                               _colour(rng, colours), alpha=float(rng.uniform(0.6, 1.0)),
                               max_w=fw * float(rng.uniform(0.3, 0.6)))
        if rng.random() < 0.3:  # a small line under it, like the score line
            sub = f"{rng.integers(0, 6)} | {rng.integers(0, 6)}" if rng.random() < 0.5 else \
                NEGATIVE_TEXTS[int(rng.integers(0, len(NEGATIVE_TEXTS)))]
            draw_styled_text(frame, rng, sub, spec, (box.y1 - box.y0) * float(rng.uniform(0.25, 0.4)),
                             (cx, box.y1 + (box.y1 - box.y0) * 0.3), _colour(rng, OTHER_COLOURS[0]), glow=False,
                             max_w=fw * 0.3)
        if rng.random() < 0.3:
            draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.2, 0.6)))
        if rng.random() < 0.2:
            draw_flash(frame, float(rng.uniform(0.05, 0.3)))
        info["kind"] = "hard_other_text"
    else:
        alpha = float(rng.uniform(0.55, 0.85)) if rng.random() < 0.6 else float(rng.uniform(0.8, 1.0))
        ensure_contrast(frame, rng, outcome_colour(np.random.default_rng([seed, index, 7]), label))
        box = draw_banner(frame, rng, label, split, alpha=alpha)
        if rng.random() < 0.4:
            draw_streak(frame, rng, (box.y0 + box.y1) / 2, float(rng.uniform(0.2, 0.6)))
        if rng.random() < 0.4:
            draw_flash(frame, float(rng.uniform(0.05, 0.3)))
        info["kind"] = "hard_faint"
    data, w, h = finish_frame(frame, rng, w, h)
    return data, w, h, info


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--install-fonts"]:
        install_npm_fonts()
        for sp in (TRAIN, EVAL):
            check_fonts(sp)
        print("fonts ok")
    else:
        print("usage: python -m training.synth --install-fonts", file=sys.stderr)
        sys.exit(2)
