"""A JPEG's header, and the one capture's encoder makes, without decoding or encoding a picture.

A looping folder replay (the demo) publishes a JPEG that is already what capture would make as it is
(:func:`as_captured`). Telling that needs only the header capture's encoder (OpenCV's libjpeg) writes at
the capture's size and quality — its quantisation tables and frame header — which :func:`jpeg_reference`
computes as libjpeg does (``jpeg_set_quality`` with ``force_baseline``, the tables of the JPEG standard's
Annex K, baseline 4:2:0), so a replay of such files loads neither OpenCV nor numpy (about 29 MB of a
process's memory). A test holds it to the header OpenCV really writes.
"""

from __future__ import annotations

# the JPEG standard's example tables (ITU T.81 Annex K.1), in natural (row-major) order, as libjpeg has them
_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip


def _zigzag() -> list[int]:
    """The natural-order index of each coefficient in zigzag order (how a DQT segment lists a table)."""
    order: list[int] = []
    for s in range(15):  # anti-diagonals: row + column = s
        cells = [(r, s - r) for r in range(8) if 0 <= s - r < 8]
        order += [r * 8 + c for r, c in (cells if s % 2 else reversed(cells))]
    return order


OPENCV_DEFAULT_QUALITY = 95  # what OpenCV's JPEG encoder uses when no quality is given (capture.quality -1)


def _scaled(table: tuple[int, ...], quality: int) -> list[int]:
    """libjpeg's ``jpeg_quality_scaling`` and ``jpeg_add_quant_table(force_baseline=TRUE)``."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((q * scale + 50) // 100, 1), 255) for q in table]


def jpeg_reference(width: int, height: int, quality: int) -> bytes:
    """:func:`jpeg_header` of a JPEG capture's encoder (``services.capture.encode.encode_image``) makes at
    that size and quality: two DQT segments (luminance, chrominance) and a baseline frame header with
    three components, Y sampled 2×2 and Cb, Cr 1×1 (4:2:0)."""
    quality = OPENCV_DEFAULT_QUALITY if quality < 0 else quality
    zigzag = _zigzag()
    out = b""
    for number, table in enumerate((_LUMINANCE, _CHROMINANCE)):
        values = _scaled(table, quality)
        out += b"\xff\xdb\x00\x43" + bytes([number]) + bytes(values[i] for i in zigzag)
    components = bytes([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    return out + b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x03" + components


def jpeg_header(data: bytes) -> bytes | None:
    """A JPEG's quantisation tables and frame header (what its encoder's quality, size, subsampling and mode
    made of it), up to its first scan; ``None`` when ``data`` is no JPEG that can be read so."""
    if data[:2] != b"\xff\xd8":
        return None
    out: list[bytes] = []
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the header is complete
            return b"".join(out) or None
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xDB:  # SOFn, DQT
            out.append(data[i:end])
        i = end
    return None


def as_captured(data: bytes, reference: bytes | None) -> bool:
    """Whether an image file is already what capture would make: a JPEG with the header (tables, size,
    subsampling) of ``reference`` (:func:`jpeg_reference`). Re-encoding it at the same quality could only
    lose detail, so it is published as it is."""
    return reference is not None and jpeg_header(data) == reference
