"""Array types and the small drawing helpers every part of the generator shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Rng = np.random.Generator
ColourRange = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

# Colours are RGB ranges.
GOLD: ColourRange = ((200, 245), (165, 200), (30, 60))
RED: ColourRange = ((225, 255), (20, 60), (20, 60))
DRAW_COLOURS: tuple[ColourRange, ...] = (((215, 255), (215, 255), (215, 255)), ((170, 210), (185, 220), (200, 235)))
WHITE: ColourRange = ((230, 255), (230, 255), (230, 255))
SILVER: ColourRange = ((170, 210), (185, 220), (200, 235))
# Every colour a banner word may come in (generator v7): the game draws DRAW in the same red as DEFEAT,
# so colour is never tied to the outcome. Names are what the evaluation grid reports.
PALETTE: dict[str, ColourRange] = {
    "red": RED,
    "gold": GOLD,
    "white": WHITE,
    "silver": SILVER,
    "blue": ((40, 90), (120, 190), (230, 255)),
    "cyan": ((40, 110), (210, 255), (225, 255)),
    "green": ((60, 130), (210, 255), (60, 120)),
    "purple": ((165, 215), (70, 120), (225, 255)),
    "orange": ((235, 255), (120, 165), (20, 60)),
    "pink": ((235, 255), (110, 170), (180, 230)),
}
OTHER_COLOURS: tuple[ColourRange, ...] = (
    WHITE,
    ((40, 90), (170, 230), (230, 255)),
    GOLD,
    RED,
    ((230, 255), (110, 160), (20, 50)),
)


def u8(a: Any) -> U8:
    """``a`` as a uint8 array (OpenCV returns untyped arrays)."""
    return np.asarray(a, dtype=np.uint8)


def f32(a: Any) -> F32:
    return np.asarray(a, dtype=np.float32)


def to_u8(frame: F32) -> U8:
    """Clip a float frame to 0..255 and convert."""
    return np.clip(frame, 0, 255).astype(np.uint8)


def rand_colour(rng: Rng, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def colour(rng: Rng, ranges: ColourRange) -> F32:
    return np.array([rng.uniform(lo, hi) for lo, hi in ranges], np.float32)


def rgb2bgr(c: F32) -> F32:
    return c[::-1].copy()


def pick(rng: Rng, items: tuple[Any, ...] | list[Any]) -> Any:
    return items[int(rng.integers(0, len(items)))]


def paste(frame: F32, layer: F32, alpha: F32, x: int, y: int) -> None:
    """Alpha-blend ``layer`` (h,w,3) with ``alpha`` (h,w) onto ``frame`` at top-left (x, y), clipped."""
    h, w = alpha.shape
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - a) + layer[y0 - y:y1 - y, x0 - x:x1 - x] * a


def add(frame: F32, layer: F32, x: int, y: int) -> None:
    """Add ``layer`` (h,w,3) onto ``frame`` at top-left (x, y), clipped (light, glow)."""
    h, w = layer.shape[:2]
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    frame[y0:y1, x0:x1] += layer[y0 - y:y1 - y, x0 - x:x1 - x]


def fill_rect(frame: F32, x0: float, y0: float, x1: float, y1: float, bgr: tuple[float, float, float] | F32,
              opacity: float) -> None:
    """Blend a flat rectangle (pixel coordinates, clipped) into ``frame``."""
    H, W = frame.shape[:2]
    a0, b0, a1, b1 = max(0, int(x0)), max(0, int(y0)), min(W, int(x1)), min(H, int(y1))
    if a0 >= a1 or b0 >= b1:
        return
    region = frame[b0:b1, a0:a1]
    region *= 1 - opacity
    region += np.asarray(bgr, np.float32) * opacity


@dataclass
class Placed:
    x0: int
    y0: int
    x1: int
    y1: int
