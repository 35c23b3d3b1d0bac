"""A frame's header read apart from its pixels: its size and format, the pixel cap, and the error a frame that
cannot be decoded raises (re-exported by :mod:`services.inference.vision`, which decodes).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

# The largest image decoded at all. OBS screenshots are at most 4096 a side (obs-websocket's
# limit), and a 4096×4096 BGR image is 48 MiB. A PNG of a few kB can declare 20000×20000 and
# would take 1.2 GB and seconds to decode: the header is checked first (decompression bombs).
MAX_PIXELS = 4096 * 4096
# What a frame may be: the formats OBS screenshots come in (png, jpg, bmp; see DESIGN §7).
HEADER_FORMATS = ("PNG", "JPEG", "BMP")


class FrameDecodeError(ValueError):
    """The bytes are not a decodable image (corrupt, empty, wrong type)."""


def header_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the image header alone, without decoding the pixels.

    Pillow's ``Image.open`` is lazy: it parses the header (PNG ``IHDR``, JPEG
    ``SOFn``) and stops. Raises :class:`FrameDecodeError` for anything that is
    not a PNG/JPEG/BMP, and for images beyond Pillow's own bomb limit.
    A plain JPEG's size is read from its frame header directly (:func:`jpeg_size`, every frame
    pays for this); anything else, or a JPEG that header walk does not understand, goes to Pillow.
    """
    size = jpeg_size(data)
    if size is not None:
        return size
    try:
        with warnings.catch_warnings():
            # between MAX_IMAGE_PIXELS and twice that Pillow only warns; MAX_PIXELS is far lower anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=HEADER_FORMATS) as image:
                return int(image.width), int(image.height)
    except Image.DecompressionBombError:
        raise FrameDecodeError(f"image too large: its header declares more than {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # Pillow reports truncated or malformed headers as OSError / SyntaxError / ValueError
        raise FrameDecodeError(f"undecodable image ({len(data)} bytes, not a PNG/JPEG: {exc})") from None


# JPEG start-of-frame markers (baseline, extended, progressive, lossless…; not DHT C4, JPG C8, DAC CC)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# markers without a length field (TEM, RST0-7)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes, max_segments: int = 64) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's start-of-frame header, or None to leave it to Pillow.

    Walks the marker segments after ``SOI`` (APPn, DQT, …) to the first ``SOFn`` — a few
    microseconds where Pillow's parser costs ~50. Returns None for anything it does not
    follow (not a JPEG, a malformed or truncated segment, a height defined later by DNL,
    scan data before a frame header), so the caller's full parser decides and reports.
    """
    if data[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(data)
    for _ in range(max_segments):
        if pos + 4 > end or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2 or pos + 2 + length > end:
            return None
        if marker in _SOF:
            if length < 8:
                return None
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            return (width, height) if width and height else None
        if marker in (0xD8, 0xD9, 0xDA):  # SOI/EOI/SOS before any frame header
            return None
        pos += 2 + length
    return None


def check_size(data: bytes, expected: tuple[int, int] | None = None) -> tuple[int, int]:
    """The header's ``(width, height)``, once it is within :data:`MAX_PIXELS` and matches ``expected``."""
    width, height = header_size(data)
    if width * height > MAX_PIXELS:
        raise FrameDecodeError(
            f"image too large: its header declares {width}×{height} pixels (at most {MAX_PIXELS} are decoded)"
        )
    if expected is not None and (width, height) != expected:
        raise FrameDecodeError(
            f"image header says {width}×{height} but the frame declares {expected[0]}×{expected[1]}"
        )
    return width, height
