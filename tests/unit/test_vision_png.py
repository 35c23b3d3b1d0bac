"""A small PNG must not cost seconds: image data beyond what its header can use is refused before decoding."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from services.inference import pngcheck, vision
from services.inference.classifier import Classifier
from tests.support.images import png_overfull
from tools.synthetic_model import write_synthetic_model


@pytest.fixture
def no_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel decoding is attempted."""

    def refuse(*_args: Any, **_kw: Any) -> None:
        raise AssertionError("cv2.imdecode was called: the frame was decoded, not rejected")

    monkeypatch.setattr(vision.cv2, "imdecode", refuse)


# (inflated size, the step that refuses it): the 2 MB file carrying 2 GB, then one that stays
# within the compressed-size bound (670 kB) but still inflates to 690 MB (1.3 s to decode today)
OVERFULL = [(2_000_000_000, "compressed image data"), (690_000_000, "inflates to more than")]


@pytest.mark.parametrize(("inflated", "step"), OVERFULL)
def test_an_overfull_png_is_an_error_without_decoding(no_decoder: None, inflated: int, step: str) -> None:
    bomb = png_overfull(640, 360, inflated)
    assert len(bomb) < 2_100_000 and vision.check_size(bomb, (640, 360)) == (640, 360)
    started = time.process_time()
    with pytest.raises(vision.FrameDecodeError, match=f"rejected before decoding: PNG .*{step}"):
        vision.decode(bomb, expected=(640, 360))
    assert time.process_time() - started < 0.5  # loose: the point is that no decoder ran


def test_the_inference_path_refuses_it_too(tmp_path: Path, no_decoder: None) -> None:
    clf = Classifier(write_synthetic_model(tmp_path / "tiny.onnx", width=32, height=16, channels=(4,)))
    bomb = png_overfull(640, 360, 2_000_000_000)
    with pytest.raises(vision.FrameDecodeError, match="rejected before decoding"):
        clf.preprocess(bomb, 640, 360)
    with pytest.raises(vision.FrameDecodeError, match="rejected before decoding"):
        clf.classify([(bomb, 640, 360)])


def _png(image: Image.Image, **save: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **save)
    return buf.getvalue()


def test_normal_frames_still_decode() -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)  # incompressible: the largest honest IDAT
    rgb = Image.fromarray(noise)
    cases = {
        "rgb stored": _png(rgb, compress_level=0),
        "rgb": _png(rgb),
        "rgba": _png(rgb.convert("RGBA")),
        "grey": _png(rgb.convert("L")),
        "palette": _png(rgb.convert("P")),
        "1-bit": _png(rgb.convert("1")),
        "flat black": _png(Image.new("RGB", (640, 360))),
        "jpeg": bytes(cv2.imencode(".jpg", noise)[1].tobytes()),
        "png by opencv": bytes(cv2.imencode(".png", noise)[1].tobytes()),
    }
    for name, data in cases.items():
        image = vision.decode(data, expected=(640, 360))
        assert image.shape == (360, 640, 3), name
    assert np.array_equal(vision.decode(cases["rgb stored"])[:, :, ::-1], noise)


def test_scanline_bytes_follow_the_png_layout() -> None:
    assert pngcheck.scanline_bytes(640, 360, 8, 2, False) == 360 * (1 + 640 * 3)
    assert pngcheck.scanline_bytes(640, 360, 1, 0, False) == 360 * (1 + 80)
    assert pngcheck.scanline_bytes(3, 1, 16, 6, False) == 1 + 3 * 8
    # Adam7 on 8×8 RGB: passes of 1×1, 1×1, 2×1, 2×2, 4×2, 4×4, 8×4 pixels
    rows = [(1, 1), (1, 1), (2, 1), (2, 2), (4, 2), (4, 4), (8, 4)]
    assert pngcheck.scanline_bytes(8, 8, 8, 2, True) == sum(h * (1 + 3 * w) for w, h in rows)
    # a 1×1 interlaced image has only the first pass
    assert pngcheck.scanline_bytes(1, 1, 8, 0, True) == 2


def test_not_a_png_or_a_broken_one_is_left_to_the_decoder() -> None:
    for data in (b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"):
        pngcheck.check(data)  # nothing to say: the decoder reports what is wrong
    with pytest.raises(vision.FrameDecodeError):
        vision.decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
