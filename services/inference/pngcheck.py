"""A PNG whose compressed data outgrows its declared size is rejected before any decoder sees it.

A PNG's pixels are one zlib stream split over its ``IDAT`` chunks, and its
``IHDR`` says exactly how many bytes that stream must inflate to (the
filtered scanlines). libpng stops filling the image there but still inflates
whatever follows ("IDAT: Too much image data"), so a 2 MB PNG declaring
640×360 and carrying 2 GB of zeros costs seconds of CPU to decode.

:func:`check` walks the chunks (no pixel work) and refuses such a file in two steps:

1. the compressed size: deflate never expands data by more than a few bytes
   per 64 KiB block, so ``IDAT`` bytes beyond :func:`compressed_limit` cannot
   all be image data. Free: it only reads chunk headers;
2. a bounded inflate: at most :func:`inflated_limit` bytes (twice what the
   header needs) are inflated; a stream that still has more is refused. This
   costs about one inflate of the image (≈1–2 ms for 640×360), skipped when
   the compressed size alone proves the stream cannot exceed the limit.

Anything else that is wrong with the file (truncated, bad CRC, a zlib error)
is left to the decoder, which reports it as it always did.
"""

from __future__ import annotations

import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# channels per colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA)
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7: (x0, y0, dx, dy) of each pass
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
# deflate's worst-case ratio is about 1032:1 (a run of length 258 coded in 2 bits)
_MAX_RATIO = 1032


class PngTooMuchData(ValueError):
    """The PNG carries more compressed image data than its header's size can use."""


def scanline_bytes(width: int, height: int, bit_depth: int, color_type: int, interlaced: bool) -> int:
    """How many bytes the ``IDAT`` stream inflates to: every row's filter byte plus its packed pixels."""
    bits = _CHANNELS.get(color_type, 4) * max(1, bit_depth)
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w = (width - x0 + dx - 1) // dx
        h = (height - y0 + dy - 1) // dy
        if w > 0 and h > 0:
            total += h * (1 + (w * bits + 7) // 8)
    return total


def compressed_limit(needed: int) -> int:
    """The most ``IDAT`` bytes a stream inflating to ``needed`` bytes can take (stored blocks + slack)."""
    return needed + needed // 1024 + 64 * 1024


def inflated_limit(needed: int) -> int:
    """Inflated bytes tolerated before the file is refused: libpng ignores a little trailing data."""
    return 2 * needed + 1024


def check(data: bytes) -> None:
    """Raise :class:`PngTooMuchData` for a PNG whose ``IDAT`` data outgrows its ``IHDR``; else return.

    Not a PNG, or a PNG too broken to walk: returns (the decoder will say what is wrong).
    """
    if not data.startswith(SIGNATURE):
        return
    view = memoryview(data)
    pos = len(SIGNATURE)
    header: tuple[int, int, int, int, bool] | None = None
    parts: list[memoryview] = []
    compressed = 0
    while pos + 8 <= len(view):
        length = int.from_bytes(view[pos:pos + 4], "big")
        kind = bytes(view[pos + 4:pos + 8])
        body = view[pos + 8:pos + 8 + length]
        if kind == b"IHDR" and len(body) >= 13:
            header = (int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big"),
                      body[8], body[9], body[12] == 1)
        elif kind == b"IDAT":
            parts.append(body)
            compressed += len(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not parts:
        return
    width, height, depth, color, interlaced = header
    needed = scanline_bytes(width, height, depth, color, interlaced)
    if compressed > compressed_limit(needed):
        raise PngTooMuchData(
            f"PNG carries {compressed} bytes of compressed image data; its {width}×{height} header "
            f"can use at most {compressed_limit(needed)}"
        )
    limit = inflated_limit(needed)
    if compressed * _MAX_RATIO <= limit:
        return  # even all zeros could not inflate past the limit
    _bounded_inflate(parts, limit, width, height, needed)


def _bounded_inflate(parts: list[memoryview], limit: int, width: int, height: int, needed: int) -> None:
    inflater = zlib.decompressobj()
    produced = 0
    try:
        for part in parts:
            produced += len(inflater.decompress(part, limit - produced + 1))
            if produced > limit or inflater.unconsumed_tail:
                raise PngTooMuchData(
                    f"PNG image data inflates to more than {limit} bytes; its {width}×{height} header "
                    f"needs {needed}"
                )
            if inflater.eof:
                return
    except zlib.error:
        return  # a broken stream: the decoder reports it


__all__ = ["PngTooMuchData", "check", "compressed_limit", "inflated_limit", "scanline_bytes"]
