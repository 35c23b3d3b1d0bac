"""Backgrounds (procedural game-like scenes, bright daylight maps, sample photos) and the HUD."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from training.synth.base import F32, U8, Rng, f32, rand_colour, to_u8, u8
from training.synth.splits import Split

BACKGROUND_FAMILIES = ("daylight", "scene", "noise", "shapes", "natural", "mosaic")


def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "data"
    return d if d.is_dir() else None


def natural_path(name: str) -> Path | None:
    """Where scikit-image's bundled sample photo ``name`` is, if installed."""
    d = _skimage_data_dir()
    return d / name if d is not None and (d / name).is_file() else None


@functools.lru_cache(maxsize=64)
def _natural(name: str) -> U8 | None:
    path = natural_path(name)
    if path is None:
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else np.ascontiguousarray(u8(img))


def natural_available(split: Split) -> list[str]:
    return [n for n in split.natural if _natural(n) is not None]


def value_noise(rng: Rng, w: int, h: int, octaves: int = 4, channels: int = 1) -> F32:
    """Smooth multi-octave noise in [0, 1], shape (h, w) or (h, w, channels); built at 1/4 size."""
    sw, sh = max(8, w // 4), max(8, h // 4)
    out = np.zeros((sh, sw, channels), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        small = rng.random((max(2, cells * h // w), cells, channels), dtype=np.float32)
        out += amp * f32(cv2.resize(small, (sw, sh), interpolation=cv2.INTER_CUBIC)).reshape(sh, sw, channels)
        total += amp
        amp *= 0.5
    big = f32(cv2.resize(out / total, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(h, w, channels)
    big = np.clip(big, 0, 1)
    return big[:, :, 0] if channels == 1 else big


def bg_scene(rng: Rng, w: int, h: int) -> U8:
    """Sky gradient, horizon, ground, building blocks, props and light blobs."""
    col = np.zeros((h, 1, 3), np.float32)
    horizon = int(h * rng.uniform(0.3, 0.7))
    top, bottom = np.array(rand_colour(rng, 60, 255), np.float32), np.array(rand_colour(rng, 20, 200), np.float32)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    col[:horizon] = top * (1 - t) + bottom * t
    g0, g1 = np.array(rand_colour(rng, 20, 180), np.float32), np.array(rand_colour(rng, 10, 120), np.float32)
    t2 = np.linspace(0, 1, h - horizon, dtype=np.float32)[:, None, None]
    col[horizon:] = g0 * (1 - t2) + g1 * t2
    tex = value_noise(rng, w, h)
    shade = u8(cv2.convertScaleAbs(tex, alpha=0.6 * 255, beta=0.7 * 255))  # 0.7..1.3 in 1/255 steps
    canvas = u8(cv2.multiply(np.broadcast_to(col.astype(np.uint8), (h, w, 3)).copy(), cv2.merge([shade] * 3),
                             scale=1 / 255))
    for _ in range(int(rng.integers(3, 14))):
        bw, bh = int(w * rng.uniform(0.05, 0.35)), int(h * rng.uniform(0.1, 0.6))
        x = int(rng.integers(-bw // 2, w))
        y = horizon - bh + int(h * rng.uniform(-0.05, 0.25))
        c = rand_colour(rng, 20, 230)
        if rng.random() < 0.5:
            cv2.rectangle(canvas, (x, y), (x + bw, y + bh), c, -1)
        else:
            pts = np.array([[x, y + bh], [x + bw, y + bh], [x + bw - int(bw * rng.uniform(0, 0.4)), y],
                            [x + int(bw * rng.uniform(0, 0.4)), y + int(bh * rng.uniform(0, 0.3))]], np.int32)
            cv2.fillPoly(canvas, [pts], c)
        if rng.random() < 0.5:  # windows / panels
            for _ in range(int(rng.integers(2, 8))):
                px, py = x + int(rng.uniform(0, bw)), y + int(rng.uniform(0, bh))
                cv2.rectangle(canvas, (px, py), (px + int(w * 0.02), py + int(h * 0.03)), rand_colour(rng), -1)
    for _ in range(int(rng.integers(0, 6))):  # characters / props
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(h * 0.3, h))
        r = int(h * rng.uniform(0.02, 0.12))
        cv2.ellipse(canvas, (cx, cy), (r, int(r * rng.uniform(1, 2.5))), float(rng.uniform(0, 180)), 0, 360,
                    rand_colour(rng), -1, cv2.LINE_AA)
    if rng.random() < 0.6:  # lights
        lw_, lh_ = max(8, w // 4), max(8, h // 4)
        light = np.zeros((lh_, lw_), np.float32)
        for _ in range(int(rng.integers(1, 5))):
            cv2.circle(light, (int(rng.uniform(0, lw_)), int(rng.uniform(0, lh_))), int(lh_ * rng.uniform(0.05, 0.3)),
                       float(rng.uniform(0.2, 0.8)), -1)
        light = f32(cv2.resize(cv2.GaussianBlur(light, (0, 0), lh_ * 0.05), (w, h), interpolation=cv2.INTER_LINEAR))
        lcol = np.array(rand_colour(rng, 150, 256), np.float32)
        canvas = np.clip(canvas + light[:, :, None] * lcol, 0, 255).astype(np.uint8)
    return canvas


def bg_daylight(rng: Rng, w: int, h: int) -> U8:
    """A bright, busy daylight map: pale sky, sunlit facades in warm/pastel colours, details, foliage, glare.

    Most of the frame is bright (luminance 150-250), like the daylight maps the
    real thin red DEFEAT was seen on; nothing is darkened anywhere.
    """
    horizon = int(h * rng.uniform(0.15, 0.6))
    sky_top = np.array(rand_colour(rng, 150, 256), np.float32) * 0.3 + np.array([235, 215, 190], np.float32) * 0.7
    sky_bot = np.array(rand_colour(rng, 200, 256), np.float32)
    t = np.linspace(0, 1, max(1, horizon), dtype=np.float32)[:, None, None]
    canvas = np.zeros((h, w, 3), np.float32)
    canvas[:horizon] = sky_top * (1 - t) + sky_bot * t
    ground = np.array(rand_colour(rng, 110, 230), np.float32)
    canvas[horizon:] = ground
    tex = value_noise(rng, w, h, octaves=5)
    canvas *= (0.85 + 0.3 * tex)[:, :, None]
    # sunlit facades: light warm/pastel blocks with a lit side and a shaded side
    for _ in range(int(rng.integers(4, 16))):
        bw, bh = int(w * rng.uniform(0.06, 0.4)), int(h * rng.uniform(0.15, 0.75))
        x = int(rng.integers(-bw // 2, w))
        y = horizon - bh + int(h * rng.uniform(0.0, 0.45))
        base = np.array(rand_colour(rng, 120, 256), np.float32)
        lit = tuple(float(v) for v in base)
        side = tuple(float(v) * float(rng.uniform(0.6, 0.85)) for v in base)
        cv2.rectangle(canvas, (x, y), (x + bw, y + bh), lit, -1)
        sw = int(bw * rng.uniform(0.1, 0.35))
        cv2.rectangle(canvas, (x + bw - sw, y), (x + bw, y + bh), side, -1)
        if rng.random() < 0.7:  # windows, arches, signs
            ww, wh = max(2, int(bw * rng.uniform(0.06, 0.15))), max(2, int(bh * rng.uniform(0.05, 0.12)))
            for gx in range(x + ww, x + bw - ww, max(ww * 2, 3)):
                for gy in range(y + wh, y + bh - wh, max(wh * 2, 3)):
                    if rng.random() < 0.75:
                        wc = tuple(float(v) for v in rand_colour(rng, 40, 256))
                        cv2.rectangle(canvas, (gx, gy), (gx + ww, gy + wh), wc, -1)
        if rng.random() < 0.3:  # an awning or banner in a saturated colour (red / gold / teal ...)
            ac = tuple(float(v) for v in rand_colour(rng, 0, 256))
            cv2.rectangle(canvas, (x, y + int(bh * 0.3)), (x + bw, y + int(bh * rng.uniform(0.35, 0.45))), ac, -1)
    for _ in range(int(rng.integers(0, 5))):  # foliage / trees
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(h * 0.2, h * 0.9))
        r = int(h * rng.uniform(0.04, 0.15))
        green = (float(rng.uniform(40, 120)), float(rng.uniform(120, 200)), float(rng.uniform(60, 150)))
        cv2.circle(canvas, (cx, cy), r, green, -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 7))):  # characters / props, some in banner-like colours
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(h * 0.3, h))
        r = int(h * rng.uniform(0.02, 0.1))
        pc = tuple(float(v) for v in rand_colour(rng))
        cv2.ellipse(canvas, (cx, cy), (r, int(r * rng.uniform(1, 2.5))), float(rng.uniform(0, 180)), 0, 360,
                    pc, -1, cv2.LINE_AA)
    if rng.random() < 0.5:  # thin poles, cables, railings
        for _ in range(int(rng.integers(2, 10))):
            p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.line(canvas, p0, p1, tuple(float(v) for v in rand_colour(rng, 30, 256)), int(rng.integers(1, 4)),
                     cv2.LINE_AA)
    detail = value_noise(rng, w, h, octaves=3, channels=1)
    canvas *= (0.92 + 0.16 * detail)[:, :, None]
    if rng.random() < 0.6:  # sun glare / haze: brighter, never darker
        sx, sy = float(rng.uniform(0, w)), float(rng.uniform(0, h * 0.5))
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        glare = np.exp(-(((xs - sx) ** 2 + (ys - sy) ** 2) / (2 * (w * float(rng.uniform(0.15, 0.5))) ** 2)))
        canvas += (255 - canvas) * (glare * float(rng.uniform(0.2, 0.6)))[:, :, None]
    canvas = f32(cv2.GaussianBlur(canvas, (0, 0), max(0.4, h * 0.0015)))
    return to_u8(canvas)


def bg_noise(rng: Rng, w: int, h: int) -> U8:
    img = value_noise(rng, w, h, octaves=int(rng.integers(2, 6)), channels=3)
    base = np.array(rand_colour(rng, 0, 200), np.float32)
    span = np.array(rand_colour(rng, 30, 256), np.float32)
    return np.clip(base + img * span, 0, 255).astype(np.uint8)


def bg_shapes(rng: Rng, w: int, h: int) -> U8:
    canvas = np.full((h, w, 3), rand_colour(rng), np.uint8)
    for _ in range(int(rng.integers(10, 40))):
        kind = rng.integers(0, 4)
        c = rand_colour(rng)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        s = int(h * rng.uniform(0.02, 0.3))
        if kind == 0:
            cv2.rectangle(canvas, (x, y), (x + s, y + int(s * rng.uniform(0.3, 3))), c, -1)
        elif kind == 1:
            cv2.circle(canvas, (x, y), s, c, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.line(canvas, (x, y), (int(rng.uniform(0, w)), int(rng.uniform(0, h))), c,
                     int(rng.integers(1, 8)), cv2.LINE_AA)
        else:
            pts = rng.integers(0, [w, h], size=(3, 2)).astype(np.int32)
            cv2.fillPoly(canvas, [pts], c, cv2.LINE_AA)
    return canvas


def _crop_natural(rng: Rng, img: U8, w: int, h: int, gain: tuple[float, float] = (0.6, 1.3)) -> U8:
    ih, iw = img.shape[:2]
    scale = rng.uniform(0.4, 1.0)
    cw = max(16, int(min(iw, ih * 16 / 9) * scale))
    ch = max(9, int(cw * 9 / 16))
    x = int(rng.integers(0, max(1, iw - cw + 1)))
    y = int(rng.integers(0, max(1, ih - ch + 1)))
    crop = img[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = u8(cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_LINEAR))
    g = rng.uniform(*gain, size=3).astype(np.float32)
    return to_u8(out.astype(np.float32) * g)


def bg_natural(rng: Rng, w: int, h: int, split: Split) -> U8:
    names = natural_available(split)
    if not names:
        return bg_scene(rng, w, h)
    img = _natural(names[int(rng.integers(0, len(names)))])
    assert img is not None
    return _crop_natural(rng, img, w, h)


def bg_mosaic(rng: Rng, w: int, h: int, split: Split) -> U8:
    """Held-out family: tiles of natural crops, noise and flat colour, softened."""
    out = np.zeros((h, w, 3), np.uint8)
    nx, ny = int(rng.integers(2, 5)), int(rng.integers(2, 4))
    xs = np.linspace(0, w, nx + 1).astype(int)
    ys = np.linspace(0, h, ny + 1).astype(int)
    for i in range(nx):
        for j in range(ny):
            tw, th = int(xs[i + 1] - xs[i]), int(ys[j + 1] - ys[j])
            r = rng.random()
            if r < 0.5:
                tile = bg_natural(rng, tw, th, split)
            elif r < 0.8:
                tile = bg_noise(rng, tw, th)
            else:
                tile = np.full((th, tw, 3), rand_colour(rng), np.uint8)
            out[ys[j]:ys[j + 1], xs[i]:xs[i + 1]] = tile
    return u8(cv2.GaussianBlur(out, (0, 0), max(0.5, h * 0.004)))


def bg_end_screen(rng: Rng, w: int, h: int) -> U8:
    """The dark end-of-match screen: near-black, a coloured glow on each side (blue left, red right most often).

    The first real DRAW was seen on such a screen (blue glow left, red glow right), not on gameplay.
    """
    base = np.array(rand_colour(rng, 4, 34), np.float32)
    canvas = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    canvas *= (0.75 + 0.5 * value_noise(rng, w, h, octaves=3))[:, :, None]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    usual = rng.random() < 0.6
    for side, bgr in ((0, (235.0, 120.0, 40.0)), (1, (40.0, 40.0, 230.0))):  # blue on the left, red on the right
        if not usual:
            c = rand_colour(rng, 30, 256)
            bgr = (float(c[0]), float(c[1]), float(c[2]))
        if rng.random() < 0.15:
            continue  # one side without a glow
        gx = w * (float(rng.uniform(-0.1, 0.25)) if side == 0 else float(rng.uniform(0.75, 1.1)))
        gy = h * float(rng.uniform(0.2, 0.8))
        sx, sy = w * float(rng.uniform(0.12, 0.3)), h * float(rng.uniform(0.3, 0.7))
        glow = np.exp(-0.5 * (((xs - gx) / sx) ** 2 + ((ys - gy) / sy) ** 2)) * float(rng.uniform(0.35, 0.9))
        canvas += glow[:, :, None] * np.asarray(bgr, np.float32)[None, None, :]
    if rng.random() < 0.5:  # faint diagonal light streaks
        for _ in range(int(rng.integers(1, 5))):
            x0 = int(rng.uniform(-w * 0.2, w))
            cv2.line(canvas, (x0, h), (x0 + int(w * rng.uniform(0.1, 0.5)), 0),
                     tuple(float(v) for v in rand_colour(rng, 20, 70)), int(max(1, h * rng.uniform(0.005, 0.03))))
    canvas = f32(cv2.GaussianBlur(canvas, (0, 0), max(0.6, h * 0.004)))
    return to_u8(canvas)


def background(rng: Rng, w: int, h: int, split: Split) -> U8:
    bw, bh = (w, h) if w <= 960 else (960, 540)
    kind = split.backgrounds[int(rng.integers(0, len(split.backgrounds)))]
    if kind == "daylight":
        img = bg_daylight(rng, bw, bh)
    elif kind == "scene":
        img = bg_scene(rng, bw, bh)
    elif kind == "noise":
        img = bg_noise(rng, bw, bh)
    elif kind == "shapes":
        img = bg_shapes(rng, bw, bh)
    elif kind == "mosaic":
        img = bg_mosaic(rng, bw, bh, split)
    else:
        img = bg_natural(rng, bw, bh, split)
    if rng.random() < 0.3:  # blend two scenes (depth, fog, particles)
        other = bg_noise(rng, bw, bh) if rng.random() < 0.5 else bg_scene(rng, bw, bh)
        a = float(rng.uniform(0.55, 0.85))
        img = u8(cv2.addWeighted(img, a, other, 1 - a, 0.0))
    if (bw, bh) != (w, h):
        img = u8(cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR))
    return np.ascontiguousarray(img)


def hershey(split: Split) -> int:
    return int(cv2.FONT_HERSHEY_SIMPLEX if split.hud_face == "simplex" else cv2.FONT_HERSHEY_DUPLEX)


def random_name(rng: Rng, lo: int = 4, hi: int = 10) -> str:
    return "".join(chr(int(c)) for c in rng.integers(65, 91, size=int(rng.integers(lo, hi))))


def draw_hud(frame: F32, rng: Rng, split: Split, crosshair: bool = True) -> None:
    H, W = frame.shape[:2]
    img = to_u8(frame)
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
    font = hershey(split)
    fs = H / 900
    if rng.random() < 0.6:  # kill feed top-right
        for i in range(int(rng.integers(1, 5))):
            name = random_name(rng)
            cv2.putText(img, f"{name} > {name[::-1]}", (int(W * 0.72), int(H * (0.06 + 0.04 * i))), font, fs,
                        white, lw, cv2.LINE_AA)
    if rng.random() < 0.3:  # a timer or a score
        cv2.putText(img, f"{rng.integers(0, 10)}:{rng.integers(10, 60)}", (W // 2 - int(W * 0.03), int(H * 0.1)),
                    font, fs * 1.5, white, lw, cv2.LINE_AA)
    frame[:] = img
