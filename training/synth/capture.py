"""How a frame reaches the detector: an optional degraded recording, then the capture's JPEG.

Recordings users feed to ``owc collect`` may be palette-quantised GIFs,
stream-encoded video with block artefacts, or small (800×450 and less) and
scaled up; the capture service then sends a JPEG.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from training.synth.base import F32, U8, Rng, pick, to_u8, u8

RECORDING_SIZES = ((480, 270), (640, 360), (800, 450))
# (kind, probability): the rest of the frames are "plain" captures
RECORDING_KINDS = (("gif", 0.13), ("blocky", 0.15), ("rescaled", 0.12))


def quantize(img: U8, rng: Rng) -> U8:
    """GIF-like: a 64-256 colour palette, usually with Floyd-Steinberg dithering."""
    colours = int(pick(rng, (64, 96, 128, 192, 256)))
    method = Image.Quantize.FASTOCTREE if rng.random() < 0.6 else Image.Quantize.MEDIANCUT
    dither = Image.Dither.FLOYDSTEINBERG if rng.random() < 0.75 else Image.Dither.NONE
    pil = Image.fromarray(np.ascontiguousarray(img[:, :, ::-1]))
    q = pil.quantize(colors=colours, method=method, dither=dither).convert("RGB")
    return np.ascontiguousarray(np.asarray(q, dtype=np.uint8)[:, :, ::-1])


def jpeg(img: U8, quality: int) -> U8:
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encode failed")
    return u8(cv2.imdecode(enc, cv2.IMREAD_COLOR))


def blocky(img: U8, rng: Rng) -> U8:
    """Stream-encoder blocking: very low quality JPEG, 8×8 blocks, or 16×16 after a 2× down/up-scale."""
    h, w = img.shape[:2]
    if rng.random() < 0.4:
        small = u8(cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        small = jpeg(small, int(rng.integers(8, 30)))
        return u8(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    return jpeg(img, int(rng.integers(5, 25)))


def record(img: U8, rng: Rng) -> tuple[U8, str]:
    """Maybe turn the rendered frame into a degraded small recording; returns it and its kind."""
    r = rng.random()
    kind, acc = "plain", 0.0
    for k, p in RECORDING_KINDS:
        acc += p
        if r < acc:
            kind = k
            break
    if kind == "plain":
        return img, kind
    h, w = img.shape[:2]
    sizes = [s for s in RECORDING_SIZES if s[0] <= w] or [RECORDING_SIZES[0]]
    rw, rh = pick(rng, sizes)
    small = u8(cv2.resize(img, (rw, rh), interpolation=cv2.INTER_AREA)) if (rw, rh) != (w, h) else img
    if kind == "gif":
        small = quantize(small, rng)
    elif kind == "blocky":
        small = blocky(small, rng)
    else:  # rescaled: a smaller recording scaled up, sometimes further down first
        if rng.random() < 0.4:
            tiny = u8(cv2.resize(small, (rw * 2 // 3, rh * 2 // 3), interpolation=cv2.INTER_AREA))
            small = u8(cv2.resize(tiny, (rw, rh), interpolation=cv2.INTER_LINEAR))
        small = jpeg(small, int(rng.integers(35, 80)))
    return small, kind


def finish_frame(
    frame: F32, rng: Rng, w: int, h: int, quality: int | None = None, recording: bool = True
) -> tuple[bytes, int, int, str]:
    """Recording, global jitter, blur, noise, then JPEG like the capture (q80 most often).

    Returns ``(jpeg, w, h, recording kind)``.
    """
    out = to_u8(frame)
    kind = "plain"
    if recording:
        out, kind = record(out, rng)
    if (out.shape[1], out.shape[0]) != (w, h):
        interp = cv2.INTER_LINEAR if out.shape[1] < w else cv2.INTER_AREA
        out = u8(cv2.resize(out, (w, h), interpolation=interp))
    if rng.random() < 0.8:
        gain = rng.uniform(0.92, 1.08, size=3)
        contrast = float(rng.uniform(0.8, 1.2))
        bright = float(rng.uniform(-20, 25))
        x = np.arange(256, dtype=np.float64)
        lut = np.stack([np.clip(((x - 128) * contrast + 128 + bright) * g, 0, 255) for g in gain], axis=1)
        out = u8(cv2.LUT(out, lut.astype(np.uint8).reshape(256, 1, 3)))
    r = rng.random()
    if r < 0.12:
        k = int(rng.integers(3, max(4, w // 90)))
        out = u8(cv2.blur(out, (k, 1)))
    elif r < 0.2:
        out = u8(cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.5, 1.3)) * w / 640))
    if rng.random() < 0.2:
        noise = rng.standard_normal(size=(h, w, 1), dtype=np.float32) * float(rng.uniform(2, 8))
        out = to_u8(out + noise)
    if rng.random() < 0.15:  # recompression: an earlier lossy step (stream encode, scaling)
        out = jpeg(out, int(rng.integers(40, 90)))
    if quality is None:
        quality = 80 if rng.random() < 0.5 else int(rng.integers(55, 96))
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encode failed")
    return bytes(enc.tobytes()), w, h, kind
