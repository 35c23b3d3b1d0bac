"""Hostile images for the decoding tests."""

from __future__ import annotations

import io

from PIL import Image


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of a few kB whose header declares ``width``×``height`` (3 bytes a pixel once decoded)."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()
