"""Image re-encoding, the way OBS would deliver a screenshot (size, format, quality).

OpenCV and numpy: imported only where a picture is decoded or encoded (a replay that needs it, the scanner);
the JPEG header checks that need neither are in :mod:`services.capture.jpeg`.
"""

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
