"""A folder replay's pictures as capture publishes them, each made once.

A file that is already what capture would make (a JPEG at the capture's size
and quality, :func:`~services.capture.jpeg.as_captured`) is published as it is;
any other is decoded and encoded once (OpenCV). A looping replay (the demo)
keeps what it made, up to :data:`ENCODED_CACHE_BYTES`, for the listing it was
made from: a changed listing starts afresh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from services.capture.jpeg import as_captured, jpeg_reference
from services.capture.metrics import CaptureMetrics
from services.common.config.settings import CaptureSettings

if TYPE_CHECKING:
    from services.capture.replay_files import Image, Load

ENCODED_CACHE_BYTES = 32 * 1024 * 1024  # a looping folder replay keeps its encoded frames up to this size


class EncodedFrames:
    def __init__(self, settings: CaptureSettings, metrics: CaptureMetrics) -> None:
        self.cfg = settings
        self.metrics = metrics
        self.kept: dict[int, bytes] = {}  # index -> the picture, for `listing`
        self.listing: list[Path] = []
        self._as_is: dict[int, bytes] = {}  # files read by ready() that are published as they are
        self._reference: bytes | None = None
        self._kept_bytes = 0

    def renew(self, listing: list[Path]) -> None:
        """A new pass over the folder: what was kept stays unless the listing changed."""
        if listing != self.listing:
            self.kept, self.listing, self._kept_bytes = {}, listing, 0

    def get(self, index: int, load: Load) -> bytes:
        """Image ``index`` of the listing as it is published."""
        image = self.kept.get(index)
        if image is not None:
            return image
        image = self._as_is.pop(index, None) or self.encode(load(0.0))
        if self.cfg.loop and self._kept_bytes + len(image) <= ENCODED_CACHE_BYTES:
            self.kept[index] = image
            self._kept_bytes += len(image)
        return image

    def ready(self, index: int) -> bool:
        """Whether image ``index`` needs no decoding: kept from an earlier pass, or a file that is already
        what capture would make."""
        if index in self.kept:
            return True
        if self.cfg.image_format != "jpg" or index >= len(self.listing):
            return False
        self._reference = self._reference or jpeg_reference(self.cfg.width, self.cfg.height, self.cfg.quality)
        try:
            data = self.listing[index].read_bytes()
        except OSError:
            return False  # the reader says why
        if as_captured(data, self._reference):
            self._as_is[index] = data
        return index in self._as_is

    def encode(self, bgr: Image | None) -> bytes:
        assert bgr is not None  # a folder's images are read ahead, never missing
        from services.capture.encode import encode_image  # OpenCV: only for a picture that needs encoding

        cfg = self.cfg
        t_enc = time.perf_counter()
        image = encode_image(bgr, cfg.image_format, cfg.width, cfg.height, cfg.quality)
        self.metrics.screenshot_seconds.observe(time.perf_counter() - t_enc)
        return image
