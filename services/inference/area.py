"""The banner area's fingerprint: what the reader's schedule compares from frame to frame
(:mod:`services.inference.banner`: a strong change arms a settle read, a reading is reused while the area
stays close to it)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["difference", "signature"]


def signature(tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A cheap fingerprint of the banner area: the gate input ``(3, H, W)`` in [-1, 1] as a grey
    thumbnail of 4×4 blocks, scaled to 0..1 (every frame pays for it: OpenCV's area resize, ~3× numpy's
    block mean; the same values to float32 rounding, ≤ 1.2e-7)."""
    grey = tensor[0] + tensor[1] + tensor[2]  # 3 × the grey level, in [-3, 3] (numpy: ~3 µs, cv2.add ~10)
    h4, w4 = grey.shape[0] // 4, grey.shape[1] // 4
    blocks = cv2.resize(grey[: h4 * 4, : w4 * 4], (w4, h4), interpolation=cv2.INTER_AREA)
    return np.asarray(blocks * np.float32(1 / 6) + np.float32(0.5), dtype=np.float32)


def difference(a: npt.NDArray[np.float32] | None, b: npt.NDArray[np.float32]) -> float:
    """Mean absolute difference of two signatures (0 = the same, 1 = black vs white); 1 without ``a``."""
    if a is None or a.shape != b.shape:
        return 1.0
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size
