"""Hostile images for the decoding tests."""

from __future__ import annotations

import io
import zlib

from PIL import Image


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of a few kB whose header declares ``width``×``height`` (3 bytes a pixel once decoded)."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def png_overfull(width: int, height: int, inflated: int) -> bytes:
    """An RGB PNG declaring ``width``×``height`` whose image data inflates to about ``inflated`` bytes of zeros.

    Built in milliseconds however large ``inflated`` is: one deflate segment of 16 MiB of zeros, ended by a
    full flush (so it refers to nothing before it), repeated, then the final block and the checksum.
    """
    piece = 16 << 20
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = raw.compress(bytes(piece)) + raw.flush(zlib.Z_FULL_FLUSH)
    count = max(1, inflated // piece)
    total = count * piece
    adler = (((total % 65521) << 16) | 1).to_bytes(4, "big")  # of zeros only: a = 1, b = n mod 65521
    stream = b"\x78\xda" + segment * count + b"\x03\x00" + adler
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((8, 2, 0, 0, 0))
    idat = b"".join(_chunk(b"IDAT", stream[i:i + 65536]) for i in range(0, len(stream), 65536))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")
