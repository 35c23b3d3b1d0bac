"""The JPEG header walk that reads every frame's size: what Pillow says, or nothing."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from services.inference import vision


def _jpeg(width: int, height: int, *, progressive: bool = False, exif: bool = False) -> bytes:
    rng = np.random.default_rng(width * height)
    img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    out = io.BytesIO()
    kwargs: dict[str, object] = {"quality": 80, "progressive": progressive}
    if exif:
        info = Image.Exif()
        info[0x0112] = 1  # orientation
        info[0x010F] = "camera" * 40  # a long APP1 segment before the frame header
        kwargs["exif"] = info.tobytes()
    img.save(out, "JPEG", **kwargs)
    return out.getvalue()


@pytest.mark.parametrize(
    ("width", "height", "progressive", "exif"),
    [(640, 360, False, False), (1920, 1080, False, True), (33, 17, True, False), (4096, 8, True, True)],
)
def test_the_header_walk_agrees_with_pillow(width: int, height: int, progressive: bool, exif: bool) -> None:
    data = _jpeg(width, height, progressive=progressive, exif=exif)
    assert vision.jpeg_size(data) == (width, height)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.width, image.height) == (width, height)
    ok, enc = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    assert ok and vision.jpeg_size(bytes(enc.tobytes())) == (width, height)


def test_anything_it_does_not_follow_goes_to_pillow() -> None:
    data = _jpeg(64, 48)
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
    sof_end = sof + 2 + ((data[sof + 2] << 8) | data[sof + 3])
    # cut anywhere before the frame header's end: no answer (Pillow then parses and reports)
    for cut in range(sof_end):
        assert vision.jpeg_size(data[:cut]) is None, cut
    assert vision.jpeg_size(data[:sof_end]) == (64, 48)
    assert vision.jpeg_size(b"\x89PNG\r\n\x1a\n" + data[2:]) is None
    broken = bytearray(data)
    broken[4:6] = b"\x00\x01"  # APP0 length below 2
    assert vision.jpeg_size(bytes(broken)) is None
    no_height = bytearray(data)
    no_height[sof + 5 : sof + 7] = b"\x00\x00"  # height defined later (DNL)
    assert vision.jpeg_size(bytes(no_height)) is None
    with pytest.raises(vision.FrameDecodeError):
        vision.header_size(data[:sof])
