"""The model contract and the pure image maths shared by inference and training.

A model is ``<name>.onnx`` plus ``<name>.json`` (:class:`ModelMeta`): labels,
the ROI as fractions of the frame, the input size and the normalisation.
Preprocessing parameters travel with the model, so a new model never needs a
config edit. Training and inference both call :func:`preprocess_bytes`, so
the network sees exactly the same pixels in both.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Literal, cast

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.inference import pngcheck

# a frame's header (size, format, the pixel cap) is read apart from decoding it; re-exported here, where callers look
from services.inference.frameheader import HEADER_FORMATS as HEADER_FORMATS
from services.inference.frameheader import MAX_PIXELS as MAX_PIXELS
from services.inference.frameheader import FrameDecodeError as FrameDecodeError
from services.inference.frameheader import check_size as check_size
from services.inference.frameheader import header_size as header_size
from services.inference.frameheader import jpeg_size as jpeg_size

MODEL_LABELS = ("none", "victory", "defeat", "draw")
# the second look's least line (``LookSpec.min_line``) unless the metadata sets one: a line lower than this share of
# the text detector's map is a speck, not text
MIN_LINE = 0.1


class ModelMetaError(ValueError):
    pass


class Roi(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Roi:
        if not (self.x0 < self.x1 and self.y0 < self.y1):
            raise ValueError("roi needs x0 < x1 and y0 < y1")
        return self


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    width: int = Field(ge=8, le=299)
    height: int = Field(ge=8, le=299)
    channels: Literal[3] = 3
    color: Literal["rgb"] = "rgb"
    layout: Literal["NCHW"] = "NCHW"
    dtype: Literal["float32"] = "float32"


class Normalize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


class GateSpec(BaseModel):
    """Stage 1, on every frame: the small CNN above; a frame is a *candidate* for the reader
    when ``1 - p(none) >= threshold`` (tuned for recall: the reader decides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(gt=0, lt=1)


class LookSpec(BaseModel):
    """The reader's second look: a pretrained text *detector* finds the text lines inside the crop, and the
    recogniser reads each of the largest ``boxes`` cut to its line. Only when the first reading's best outcome
    word is below ``accept`` and at least ``from_score`` per letter (a word of ours read poorly, not a crop
    without one). The detector comes from the reader's own package unless ``package``/``version``/``module``
    name another pinned one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    package: str | None = Field(None, min_length=1)
    version: str | None = Field(None, min_length=1)
    module: str | None = Field(None, min_length=1)
    model: str = Field(min_length=1)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    height: int = Field(64, ge=32, le=256)  # the detector's input height (a multiple of 32)
    threshold: float = Field(0.3, gt=0, lt=1)  # text probability that makes a pixel part of a line
    boxes: int = Field(2, ge=1, le=4)
    pad: float = Field(0.4, ge=0, le=2)  # margin around a line, of its height
    from_score: float = Field(-6.0, lt=0)
    # the detector searches the crop raised by this share of the frame at its top (a word drawn high, its tops cut
    # by the crop, is found whole); 0: the crop itself
    above: float = Field(0.0, ge=0, le=0.2)
    # also read that raised area whole (one more recogniser run): always (true), or only when the detector found a
    # line in it ("lines": a frame with no line of text there has no word to read whole; most gameplay reads)
    whole: bool | Literal["lines"] = False
    # each line's and the raised area's outcome words are placed like the first look's (issue 21, the live run):
    # their centre as a share of the crop's width (a line's box mapped back into the crop) and their letters'
    # height, so ``spec.centre`` and ``spec.letter_height`` judge a word whichever look read it. False: a word only
    # the second look read has no place and is not judged by it (detectors before it)
    placed: bool = False
    # a line whose outcome word reads at least ``near_miss`` is read again with its box widened by this × its height
    # on each side, look-alikes only (a ``DEFEATED`` whose ``ED`` the detector's box cut off); 0: not
    widen: float = Field(0.0, ge=0, le=4)
    # a line whose core (the detector's own box, before ``pad``) is lower than this share of the searched area's
    # height is not read: the banner's word is large type, a list's rows and small print are not (issue 21, the
    # live run: career lists counted through one row read in the crop). 0.1: any line but a speck (detectors
    # before it)
    min_line: float = Field(MIN_LINE, gt=0, lt=1)

    @model_validator(mode="after")
    def _height(self) -> LookSpec:
        if self.height % 32:
            raise ValueError("reader.second_look.height must be a multiple of 32")
        if len({self.package is None, self.version is None, self.module is None}) > 1:
            raise ValueError("reader.second_look names its own package with package, version and module together")
        return self


ONNX_CHARSET = "onnx:"  # reader.charset = "onnx:KEY": the recogniser's character list is its metadata property KEY


class ReaderSpec(BaseModel):
    """Stage 2, on candidates only: a pretrained CTC text recogniser from a pinned package.

    ``accept`` is the mean log-probability per character at which a word's
    outcome reaches probability 0.9 (the counting rules' default
    ``min_confidence``); ``slope`` is how fast the probability moves with the
    score; ``near_miss`` is the score above which a rejected reading is shown
    to the streamer as "saw DEFEAT — not counted".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    package: str = Field(min_length=1)
    version: str = Field(min_length=1)
    module: str = Field(min_length=1)
    model: str = Field(min_length=1)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # a file in the package (a character a line) or "onnx:KEY", the model's metadata property KEY; sha256 of either
    charset: str = Field(min_length=1)
    charset_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str = ""
    roi: Roi
    height: int = Field(48, ge=16, le=128)
    max_width: int = Field(320, ge=32, le=2048)
    words: dict[str, tuple[str, ...]]
    # words the game shows that look like ours (DEFEND, DEFEATED, VICTORIES…): read better, they veto
    lookalikes: tuple[str, ...] = ()
    accept: float = Field(lt=0)
    slope: float = Field(gt=0)
    near_miss: float = Field(lt=0)
    # a word of ours in the bands just above or below the crop too: a list of results (the
    # career match history), not the banner, which stands alone
    list_check: bool = True
    # a second look at a poorly read crop, cut to its text line (absent: one look)
    second_look: LookSpec | None = None
    # when the text runs into a side of the crop, read it again widened by this share of the frame on
    # each side, where a look-alike read better vetoes (VICTORIES cut to VICTORIE; 0: never)
    widen: float = Field(0.0, ge=0, le=0.5)
    # the wider crop read whenever a reading reaches near_miss, its look-alikes found anywhere in its line (ctc.spot_…)
    spot: bool = False
    # ... and read a second time raised by this share of the frame at its top, the better look-alike of both kept (a
    # large ``DEFEATED`` drawn high, its tops cut by the crop, reads ``DEFEAT`` there and whole only when its tops are
    # in; one drawn under other text reads whole only without them; 0: only the crop's own rows)
    widen_above: float = Field(0.0, ge=0, le=0.2)
    # the banner's word is centred on the frame, and so in the crop: an outcome word whose letters' centre (a share
    # of the crop's width) lies outside this range is not the banner (None: no check)
    centre: tuple[float, float] | None = None
    # the banner's word is whole: an outcome word whose letters are less tall than this share of its width per letter
    # (the rows holding 0.9 of its stroke edges) is a strip of a word — its letters' tops or bottoms — not the banner
    # (None: no check)
    letter_height: float | None = Field(None, gt=0, le=4)

    @model_validator(mode="after")
    def _words(self) -> ReaderSpec:
        if set(self.words) != set(MODEL_LABELS[1:]) or not all(self.words.values()):
            raise ValueError(f"reader.words needs at least one word for each of {list(MODEL_LABELS[1:])}")
        if self.near_miss >= self.accept:
            raise ValueError("reader.near_miss must be below reader.accept")
        if self.second_look is not None and self.second_look.from_score >= self.accept:
            raise ValueError("reader.second_look.from_score must be below reader.accept")
        if self.centre is not None and not 0.0 <= self.centre[0] < 0.5 < self.centre[1] <= 1.0:
            raise ValueError("reader.centre must be a range [low, high] around 0.5, within 0..1")
        if self.charset.startswith(ONNX_CHARSET) and not self.charset[len(ONNX_CHARSET):]:
            raise ValueError(f"reader.charset {self.charset!r} names no metadata property ({ONNX_CHARSET}KEY)")
        return self


class ModelMeta(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    schema_version: Literal[1, 2] = 1
    model_id: str = Field(min_length=1)
    labels: tuple[str, ...] = MODEL_LABELS
    # the gate network's input: ROI, size and normalisation (schema 1 = the gate alone decides)
    roi: Roi
    input: InputSpec
    normalize: Normalize = Normalize()
    gate: GateSpec | None = None
    reader: ReaderSpec | None = None
    # training summary etc. are free-form extras

    @model_validator(mode="after")
    def _stages(self) -> ModelMeta:
        if (self.schema_version == 2) != (self.reader is not None and self.gate is not None):
            raise ValueError("schema_version 2 describes a gate and a reader; schema_version 1 neither")
        return self

    @model_validator(mode="after")
    def _labels(self) -> ModelMeta:
        if tuple(self.labels) != MODEL_LABELS:
            raise ValueError(f"labels must be {list(MODEL_LABELS)} in this order")
        return self

    @classmethod
    def load(cls, path: Path) -> ModelMeta:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelMetaError(
                f"model metadata {str(path)!r} is missing: every model needs its .json beside it"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelMetaError(f"model metadata {str(path)!r} cannot be read: {exc}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ModelMetaError(
                f"model metadata {str(path)!r}: {where}: {err['msg']}"
            ) from None


def meta_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def roi_box(width: int, height: int, roi: Roi) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` of the ROI in a ``width``×``height`` image."""
    x0 = (round(roi.x0 * width))
    y0 = (round(roi.y0 * height))
    x1 = max(x0 + 1, (round(roi.x1 * width)))
    y1 = max(y0 + 1, (round(roi.y1 * height)))
    return x0, y0, min(x1, width), min(y1, height)


_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def reduction_for(width: int, height: int, meta: ModelMeta) -> int:
    """Largest JPEG decode reduction (1, 2, 4, 8) that keeps the ROI at least input-sized.

    Decoding a JPEG at 1/2 or 1/4 scale is several times cheaper than a full
    decode and the ROI is resized down anyway.
    """
    roi_w = (meta.roi.x1 - meta.roi.x0) * width
    roi_h = (meta.roi.y1 - meta.roi.y0) * height
    best = 1
    for factor in (2, 4, 8):
        if roi_w / factor >= meta.input.width and roi_h / factor >= meta.input.height:
            best = factor
    return best


def decode(data: bytes, reduction: int = 1, expected: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG bytes to a BGR image, raising :class:`FrameDecodeError`.

    The header is checked first (:func:`check_size`): at most :data:`MAX_PIXELS`,
    and exactly ``expected`` (the frame's declared width and height) when given.
    A PNG must also carry no more compressed data than that size can use
    (:mod:`services.inference.pngcheck`): a small file must not cost seconds.
    """
    if not data:
        raise FrameDecodeError("empty image")
    check_size(data, expected)
    try:
        pngcheck.check(data)
    except pngcheck.PngTooMuchData as exc:
        raise FrameDecodeError(f"rejected before decoding: {exc}") from None
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buf, _REDUCED.get(reduction, cv2.IMREAD_COLOR))
    except cv2.error as exc:
        raise FrameDecodeError(f"undecodable image ({exc.msg.strip() if hasattr(exc, 'msg') else exc})") from None
    if image is None or image.size == 0:
        raise FrameDecodeError(f"undecodable image ({len(data)} bytes, not a PNG/JPEG)")
    return cast(npt.NDArray[np.uint8], image)


def crop_roi(image: npt.NDArray[np.uint8], roi: Roi) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = roi_box(w, h, roi)
    return image[y0:y1, x0:x1]


@functools.lru_cache(maxsize=8)
def _normalise_lut(norm: Normalize) -> npt.NDArray[np.float32]:
    """``(256, 1, 3)`` table: uint8 value -> normalised float32, per BGR channel.

    Each entry is computed with exactly the float32 operations of the direct
    formula ``(v - mean / scale) * (scale / std)``, so a lookup gives
    bit-identical results at a fraction of the cost.
    """
    mean = np.asarray(norm.mean, dtype=np.float32) / np.float32(norm.scale)
    inv = np.float32(norm.scale) / np.asarray(norm.std, dtype=np.float32)
    values = np.arange(256, dtype=np.float32)[:, None]
    rgb = ((values - mean) * inv).astype(np.float32)
    lut = np.ascontiguousarray(rgb[:, ::-1]).reshape(256, 1, 3)
    lut.setflags(write=False)
    return lut


def normalise(roi_bgr: npt.NDArray[np.uint8], meta: ModelMeta) -> npt.NDArray[np.float32]:
    """Resize the ROI to the input size and normalise to a ``(3, H, W)`` RGB float32 tensor.

    Same values as ``((rgb.astype(float32) - mean / scale) * (scale / std))``
    transposed to CHW (see :func:`normalise_reference`), computed through a
    per-channel lookup table because this runs for every frame.
    """
    size = (meta.input.width, meta.input.height)
    resized = cv2.resize(roi_bgr, size, interpolation=cv2.INTER_AREA)
    values = cv2.LUT(resized, _normalise_lut(meta.normalize))  # (H, W, 3) float32, BGR
    # BGR HWC -> RGB CHW in one copy
    return np.ascontiguousarray(values.transpose(2, 0, 1)[::-1], dtype=np.float32)


def normalise_reference(roi_bgr: npt.NDArray[np.uint8], meta: ModelMeta) -> npt.NDArray[np.float32]:
    """The plain formula :func:`normalise` must match bit for bit (kept for tests)."""
    size = (meta.input.width, meta.input.height)
    resized = cv2.resize(roi_bgr, size, interpolation=cv2.INTER_AREA)
    rgb = resized[:, :, ::-1].astype(np.float32)
    n = meta.normalize
    mean = np.asarray(n.mean, dtype=np.float32) / np.float32(n.scale)
    inv = np.float32(n.scale) / np.asarray(n.std, dtype=np.float32)
    chw = ((rgb - mean) * inv).transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32)


def preprocess_image(image_bgr: npt.NDArray[np.uint8], meta: ModelMeta) -> npt.NDArray[np.float32]:
    """Full-frame BGR image -> ``(3, H, W)`` model input."""
    return normalise(crop_roi(image_bgr, meta.roi), meta)


def decode_frame(
    data: bytes, meta: ModelMeta, width: int | None = None, height: int | None = None
) -> npt.NDArray[np.uint8]:
    """Decode an encoded frame for the model: JPEGs at a reduced scale when allowed.

    With the frame's size known (it travels with every frame), JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale when the ROI stays at least input-sized.
    """
    reduction = 1
    if width and height and data[:2] == b"\xff\xd8":
        reduction = reduction_for(width, height, meta)
    return decode(data, reduction, (width, height) if width and height else None)


def preprocess_bytes(
    data: bytes, meta: ModelMeta, width: int | None = None, height: int | None = None
) -> npt.NDArray[np.float32]:
    """Encoded frame -> ``(3, H, W)`` model input (:func:`decode_frame` + :func:`preprocess_image`)."""
    return preprocess_image(decode_frame(data, meta, width, height), meta)


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)  # type: ignore[no-any-return]
