"""Image re-encoding, the way OBS would deliver a screenshot (size, format, quality)."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from services.common.contracts.messages import ImageFormat


def encode_image(
    bgr: npt.NDArray[np.uint8], fmt: ImageFormat, width: int, height: int, quality: int = -1
) -> bytes:
    """Stretch to exactly ``width``×``height`` (as OBS does when both are given) and encode."""
    if bgr.shape[1] != width or bgr.shape[0] != height:
        shrinking = bgr.shape[1] > width or bgr.shape[0] > height
        bgr = cast(
            "npt.NDArray[np.uint8]",
            cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR),
        )
    params: list[int] = []
    if fmt == "jpg":
        if quality >= 0:
            params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        ok, buf = cv2.imencode(".jpg", bgr, params)
    else:
        ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"cannot encode a {width}x{height} {fmt} image")
    return bytes(buf.tobytes())


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


def jpeg_reference(width: int, height: int, quality: int) -> bytes | None:
    """:func:`jpeg_header` of the JPEG :func:`encode_image` makes at that size and quality."""
    return jpeg_header(encode_image(np.zeros((height, width, 3), np.uint8), "jpg", width, height, quality))


def as_captured(data: bytes, reference: bytes | None) -> bool:
    """Whether an image file is already what capture would make: a JPEG with the header (tables, size,
    subsampling) of ``reference``, :func:`jpeg_header` of one :func:`encode_image` made. Re-encoding it at the
    same quality could only lose detail, so it is published as it is."""
    return reference is not None and jpeg_header(data) == reference
