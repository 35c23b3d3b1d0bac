"""Fonts: where they come from (Debian packages, pinned npm @fontsource packages), and text masks."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.synth.base import F32, f32

# npm @fontsource packages (pinned) are installed here by ``install_npm_fonts``.
NPM_FONT_PREFIX = Path(__file__).resolve().parent.parent / "cache" / "fonts"
NPM_FONTS = (
    "@fontsource/oswald@5.3.0",
    "@fontsource/barlow-condensed@5.3.0",
    "@fontsource/anton@5.3.0",
    "@fontsource/roboto-condensed@5.3.0",
    "@fontsource/teko@5.3.0",
    "@fontsource/fjalla-one@5.3.0",
    "@fontsource/saira-condensed@5.3.0",
    "@fontsource/big-shoulders-display@5.3.0",
    "@fontsource/fira-sans-extra-condensed@5.3.0",
    "@fontsource/league-gothic@5.3.0",
    "@fontsource/archivo-narrow@5.3.0",
    "@fontsource/saira-extra-condensed@5.3.0",
    "@fontsource/antonio@5.3.0",
    "@fontsource/ibm-plex-sans-condensed@5.3.0",
)
FONT_DIRS = (
    *(NPM_FONT_PREFIX / "node_modules" / pkg.rsplit("@", 1)[0] / "files" for pkg in NPM_FONTS),
    Path("/usr/share/fonts/opentype/bebas-neue"),
    Path("/usr/share/fonts/truetype/bebas-neue"),
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/dejavu"),
)
DEBIAN_FONT_PACKAGES = "fonts-bebas-neue, fonts-noto-cjk, fonts-dejavu-core and fonts-dejavu-extra"

# The real banners are strongly slanted: upright fonts get a strong shear, italics a little more.
UPRIGHT_SHEAR = (0.15, 0.42)
ITALIC_SHEAR = (0.02, 0.22)


@dataclass(frozen=True)
class FontSpec:
    file: str
    index: int = 0
    shear: tuple[float, float] = UPRIGHT_SHEAR  # extra italic shear (x offset per unit of height)


def italic(file: str) -> FontSpec:
    return FontSpec(file, shear=ITALIC_SHEAR)


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
            f"font {name!r} not found: install the Debian packages {DEBIAN_FONT_PACKAGES}, and the npm fonts "
            "with `python -m training.synth --install-fonts`"
        )
    return p


def install_npm_fonts() -> None:
    """``npm install`` the pinned @fontsource packages into ``training/cache/fonts`` (git-ignored)."""
    NPM_FONT_PREFIX.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(NPM_FONT_PREFIX), *NPM_FONTS]
    subprocess.run(cmd, check=True)
    usable.cache_clear()


@functools.lru_cache(maxsize=64)
def usable(fonts: tuple[FontSpec, ...]) -> tuple[FontSpec, ...]:
    """The installed fonts of a list (npm fonts may be missing where only the runtime is installed)."""
    found = tuple(f for f in fonts if _find_font(f.file) is not None)
    if not found:
        font_file(fonts[0].file)  # raises with the install hint
    return found


@functools.lru_cache(maxsize=512)
def load_font(name: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    # the basic layout engine always: with Raqm (used when the system happens to have libraqm/fribidi) the same
    # text lays out differently, so the same seed would render other pixels on another machine
    return ImageFont.truetype(str(font_file(name)), size=max(6, size), index=index,
                              layout_engine=ImageFont.Layout.BASIC)


def text_mask(text: str, spec: FontSpec, size: int, shear: float, stroke: float = 0.0) -> F32:
    """White-on-black float mask of ``text`` (tightly cropped, italic sheared).

    ``stroke`` changes the stroke weight: negative thins the letters (erosion by that fraction of the
    font size), positive makes them bolder (dilation).
    """
    font = load_font(spec.file, spec.index, size)
    left, top, right, bottom = font.getbbox(text)
    pad = int(size * 0.15) + 2
    tw, th = int(right - left) + 2 * pad, int(bottom - top) + 2 * pad
    extra = int(abs(shear) * th) + 2
    img = Image.new("L", (tw + extra, th), 0)
    ImageDraw.Draw(img).text((pad - left + extra, pad - top), text, fill=255, font=font)
    if shear:
        # x_src = x + shear * (y - th): top leans right
        img = img.transform(img.size, Image.Transform.AFFINE, (1, shear, -shear * th, 0, 1, 0),
                            resample=Image.Resampling.BILINEAR)
    m = np.asarray(img, dtype=np.float32) / 255.0
    if stroke:
        k = round(abs(stroke) * size)
        if k >= 1:
            kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
            m = f32(cv2.erode(m, kernel) if stroke < 0 else cv2.dilate(m, kernel))
    ys, xs = np.nonzero(m > 0.02)
    if len(xs) == 0:
        return m
    return m[max(0, int(ys.min()) - 1): int(ys.max()) + 2, max(0, int(xs.min()) - 1): int(xs.max()) + 2]
