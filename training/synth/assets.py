"""What a rendered frame depends on besides its seed: the generator's code, fonts, photos and libraries.

Every cache of rendered frames is keyed on :func:`render_fingerprint`, so a
frame cached by other code, another font file, a photo that was missing, or
another Pillow/OpenCV never stands in for a fresh render (a stale cache of
held-out frames made an identical gate evaluate differently on a fresh clone).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from services.common.infra.files import sha256_file
from training.synth.fonts import FontMissingError, font_file, install_npm_fonts, usable
from training.synth.scenes import natural_path
from training.synth.splits import Split, check_fonts

SYNTH_DIR = Path(__file__).resolve().parent


class PhotoMissingError(RuntimeError):
    pass


@functools.lru_cache(maxsize=256)
def file_sha256(path: Path) -> str:
    """:func:`services.common.infra.files.sha256_file`, once per file per process (fonts and photos do not change)."""
    return sha256_file(path)


def code_digest() -> str:
    """sha256 of the generator's source files (sorted by name)."""
    h = hashlib.sha256()
    for p in sorted(SYNTH_DIR.glob("*.py"), key=lambda q: q.name):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def libraries() -> dict[str, str]:
    """The versions of what draws, resizes and encodes the pixels."""
    import cv2
    import numpy as np
    import PIL
    from PIL import features

    from training import kernels

    return {"pillow": PIL.__version__, "freetype": str(features.version("freetype2")), "opencv": cv2.__version__,
            "numpy": np.__version__, "kernels": kernels.render_state()}


def check_photos(split: Split) -> None:
    """Raise :class:`PhotoMissingError` unless every photo of ``split`` is there (never silently fewer)."""
    missing = [n for n in split.natural if natural_path(n) is None]
    if missing:
        raise PhotoMissingError(
            f"the {split.name} split's photos {missing} are missing: they come with scikit-image==0.26.0 "
            "(the `train` extra: `make setup-train`)"
        )


def ensure_fonts(*splits: Split) -> None:
    """Check the fonts and photos of ``splits``; install the npm fonts once if missing (Debian ones must be there).

    A missing photo raises too: a split drawn without some of its photos is another data set.
    """
    try:
        for sp in splits:
            check_fonts(sp)
    except FontMissingError:
        print("installing the pinned npm fonts into training/cache/fonts", flush=True)
        install_npm_fonts()
        for sp in splits:
            check_fonts(sp)
    for sp in splits:
        check_photos(sp)


def assets(split: Split) -> dict[str, str]:
    """File -> sha256 (16 hex) of every font and photo the split draws with."""
    out: dict[str, str] = {}
    for spec in (*usable(split.latin), *usable(split.cjk), split.hud_font):
        out[spec.file] = file_sha256(font_file(spec.file))[:16]
    for name in split.natural:
        p = natural_path(name)
        out[name] = file_sha256(p)[:16] if p is not None else "missing"
    return dict(sorted(out.items()))


def render_fingerprint(split: Split) -> dict[str, Any]:
    """Everything besides the seed that decides a split's pixels."""
    return {"code": code_digest(), "assets": assets(split), "libraries": libraries()}


def fingerprint_digest(split: Split) -> str:
    import json

    blob = json.dumps(render_fingerprint(split), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
