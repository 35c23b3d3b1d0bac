"""The list check's geometry and decision (pure): is an outcome word one row of a list of results?

The end-of-match banner stands alone: a score line and ``FINAL SCORE`` under
it at most. The career match history shows the same words, one per row,
smaller than the banner and about a row's height apart. So the reader also
reads strips above and below its own crop, each 0.6 as tall as the crop (a
list's word, ~0.05 of the frame, then fills the strip about as the banner word
fills the crop, and is read at its own size), two per side overlapping by
half, starting a quarter strip away from the crop (a banner word that sits a
little higher or lower than the crop is the same word, not a neighbour). A
word of ours read there even unsure — at the reader's near-miss level — makes
the frame a list. Three strips per side (issue 21, pool seed 2002): with two,
a list whose rows sit 0.18 of the frame apart with its row in the crop high
had its next row straddle the crop and the first strip and the one after cut
by the second strip's end, and was counted.

Each strip is read only where it can hold a word (:func:`text_span`: from its first to its last column
with letter-like stroke edges, plus a margin), a strip with no such column is not read at all, and once
a strip reads as a list the others are not read: the same verdicts for about a third of the recogniser
columns (a banner's strips are mostly empty scene or a short score line; docs/detector.md has the figures).

Before issue 21.4 the check read one band as tall as the crop on each side
and wanted a neighbour read as well as a banner (``accept``): a list's small
words, shrunk into a band sized for the banner, often read just under it, and
two career screens were counted in 10 h of the long run.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from services.inference import vision

STRIP = 0.6  # a strip's height, of the crop's
GAP = 0.25  # the space between the crop and the first strip, of a strip's height
PER_SIDE = 3  # strips per side, each starting half a strip further out
TEXT_STEP = 16  # step in some colour channel across two columns that a letter's stroke edge makes at least
TEXT_ROWS = 2  # rows of a column with such a step for the column to hold something text-like
TEXT_MARGIN = 24  # columns kept either side of the outermost such column (3 recogniser steps)
NO_TEXT = -99.0  # the score of a strip with nothing text-like in it (not read)


def bands(roi: vision.Roi) -> list[vision.Roi]:
    """The strips above (nearest first) then below the crop, clipped to the frame (a strip cut to
    less than half its height is left out)."""
    h = (roi.y1 - roi.y0) * STRIP
    gap = h * GAP
    out: list[vision.Roi] = []
    spans = [(roi.y0 - gap - h - k * h / 2, roi.y0 - gap - k * h / 2) for k in range(PER_SIDE)]
    spans += [(roi.y1 + gap + k * h / 2, roi.y1 + gap + h + k * h / 2) for k in range(PER_SIDE)]
    for y0, y1 in spans:
        y0, y1 = max(0.0, y0), min(1.0, y1)
        if y1 - y0 >= h / 2:
            out.append(vision.Roi(x0=roi.x0, y0=y0, x1=roi.x1, y1=y1))
    return out


def is_list(scores: Sequence[float], spec: vision.ReaderSpec) -> bool:
    """An outcome word in any strip, read at least at the near-miss level: a list of results."""
    return any(score >= spec.near_miss for score in scores)


def text_span(line: npt.NDArray[np.uint8]) -> tuple[int, int] | None:
    """The columns ``[start, end)`` of a strip (BGR, at the recogniser's line height) that can hold a word.

    A letter has stroke edges: a column holds something text-like when at least ``TEXT_ROWS`` of its rows
    step by ``TEXT_STEP`` levels or more, in any colour channel, from the column before it to the column
    after it. Per channel, not in grey: a red word on a purple row differs little in grey; across two
    columns, not one: a blurred or blocky capture spreads an edge over two or three pixels (issue 21: a
    career list's red ``DEFEAT`` rows on a blocky capture had no one-column grey step of 16, so no strip was
    read and the list was counted). The span runs from the first such column to the last, widened by
    ``TEXT_MARGIN`` on each side (the recogniser needs the blank around a word) and to at least a square;
    ``None`` when no column qualifies (a flat or smooth strip: no word to read).
    """
    h, w = line.shape[:2]
    step = colour_steps(line)
    cols = np.flatnonzero(np.count_nonzero(step >= TEXT_STEP, axis=0) >= TEXT_ROWS) + 1
    if cols.size == 0:
        return None
    start, end = max(0, int(cols[0]) - TEXT_MARGIN), min(w, int(cols[-1]) + 1 + TEXT_MARGIN)
    if end - start < h:
        centre = (start + end) // 2
        start = max(0, min(centre - h // 2, w - h))
        end = min(w, start + h)
    return start, end


def colour_steps(line: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``(h, w − 2)``: how far each pixel of ``line`` (BGR or grey) steps from the column before it to the column
    after it, in its largest colour channel — at column ``j`` the edge of the line's column ``j + 1``.

    |column j+2 − column j| per channel in uint8 (exact), then the largest channel. OpenCV, not numpy: the int16
    difference and the max over the channel axis cost ~0.29 ms a strip, this ~0.05 ms, the same values
    (tests/unit/test_inference_listcheck.py pins it to the numpy formula).
    """
    step = cv2.absdiff(line[:, 2:], line[:, :-2])
    if step.ndim == 3:
        channels = cv2.split(step)
        step = channels[0]
        for channel in channels[1:]:
            step = cv2.max(step, channel)
    return np.asarray(step, dtype=np.uint8)
