"""The train and held-out splits: disjoint fonts, disjoint photos, one background family each.

The held-out split measures generalisation to unseen typography and scenes,
not memorisation. Both splits span the stroke weights the game uses (thin,
regular and bold condensed capitals, upright ones given a strong shear).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.synth.fonts import FontSpec, font_file, italic, usable


@dataclass(frozen=True)
class Split:
    name: str
    latin: tuple[FontSpec, ...]
    cjk: tuple[FontSpec, ...]
    natural: tuple[str, ...]
    backgrounds: tuple[str, ...]
    hud_font: FontSpec = field(default_factory=lambda: FontSpec("DejaVuSans-Bold.ttf"))
    hud_face: str = "simplex"  # the OpenCV Hershey face of small HUD text: simplex | duplex


TRAIN = Split(
    name="train",
    latin=(
        FontSpec("BebasNeue-Bold.otf"),
        FontSpec("BebasNeue-Regular.otf"),
        FontSpec("BebasNeue-Thin.otf"),
        FontSpec("DejaVuSansCondensed-BoldOblique.ttf", shear=(0.05, 0.25)),
        FontSpec("DejaVuSansCondensed-Oblique.ttf", shear=(0.05, 0.25)),
        FontSpec("DejaVuSans-Bold.ttf"),
        FontSpec("oswald-latin-700-normal.woff"),
        FontSpec("oswald-latin-400-normal.woff"),
        FontSpec("oswald-latin-300-normal.woff"),
        italic("barlow-condensed-latin-800-italic.woff"),
        italic("barlow-condensed-latin-600-italic.woff"),
        italic("barlow-condensed-latin-400-italic.woff"),
        italic("barlow-condensed-latin-300-italic.woff"),
        FontSpec("anton-latin-400-normal.woff"),
        italic("roboto-condensed-latin-700-italic.woff"),
        italic("roboto-condensed-latin-400-italic.woff"),
        italic("roboto-condensed-latin-300-italic.woff"),
        italic("DejaVuSerifCondensed-BoldItalic.ttf"),
        FontSpec("big-shoulders-display-latin-800-normal.woff"),
        FontSpec("big-shoulders-display-latin-400-normal.woff"),
        FontSpec("big-shoulders-display-latin-300-normal.woff"),
        italic("fira-sans-extra-condensed-latin-600-italic.woff"),
        italic("fira-sans-extra-condensed-latin-400-italic.woff"),
        italic("fira-sans-extra-condensed-latin-300-italic.woff"),
        FontSpec("league-gothic-latin-400-normal.woff"),
    ),
    cjk=(FontSpec("NotoSansCJK-Bold.ttc"), FontSpec("NotoSerifCJK-Regular.ttc")),
    natural=(
        "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
        "hubble_deep_field.jpg", "grass.png", "brick.png", "camera.png", "coins.png", "text.png",
    ),
    backgrounds=("daylight", "daylight", "daylight", "scene", "scene", "noise", "natural", "natural", "shapes"),
)

EVAL = Split(
    name="eval",
    latin=(
        FontSpec("BebasNeue-Book.otf"),
        FontSpec("BebasNeue-Light.otf"),
        FontSpec("DejaVuSansCondensed-Bold.ttf"),
        FontSpec("DejaVuSansCondensed.ttf"),
        FontSpec("teko-latin-600-normal.woff"),
        FontSpec("teko-latin-400-normal.woff"),
        FontSpec("teko-latin-300-normal.woff"),
        FontSpec("fjalla-one-latin-400-normal.woff"),
        FontSpec("saira-condensed-latin-700-normal.woff"),
        FontSpec("saira-condensed-latin-400-normal.woff"),
        FontSpec("saira-extra-condensed-latin-300-normal.woff"),
        italic("archivo-narrow-latin-400-italic.woff"),
        italic("archivo-narrow-latin-600-italic.woff"),
        italic("ibm-plex-sans-condensed-latin-400-italic.woff"),
        italic("ibm-plex-sans-condensed-latin-300-italic.woff"),
        FontSpec("antonio-latin-400-normal.woff"),
    ),
    cjk=(FontSpec("NotoSerifCJK-Bold.ttc"), FontSpec("NotoSansCJK-Regular.ttc")),
    natural=("motorcycle_right.png", "retina.jpg", "ihc.png", "gravel.png", "moon.png", "page.png"),
    backgrounds=("daylight", "daylight", "daylight", "scene", "noise", "natural", "natural", "mosaic"),
    hud_font=FontSpec("DejaVuSansCondensed.ttf"),
    hud_face="duplex",
)

SPLITS = {"train": TRAIN, "eval": EVAL}


def fonts_in_use(split: Split) -> list[str]:
    return [f.file for f in (*usable(split.latin), *usable(split.cjk))]


def check_fonts(split: Split) -> None:
    """Raise :class:`FontMissingError` unless every font of ``split`` is installed."""
    for spec in (*split.latin, *split.cjk, split.hud_font):
        font_file(spec.file)
