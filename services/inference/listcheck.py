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
the frame a list. Four strips, not more: they cost one recogniser run of four
lines (three per side of half the crop's height caught 1% more career frames
for almost twice the columns).

Before issue 21.4 the check read one band as tall as the crop on each side
and wanted a neighbour read as well as a banner (``accept``): a list's small
words, shrunk into a band sized for the banner, often read just under it, and
two career screens were counted in 10 h of the long run.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.inference import vision

STRIP = 0.6  # a strip's height, of the crop's
GAP = 0.25  # the space between the crop and the first strip, of a strip's height
PER_SIDE = 2  # strips per side, each starting half a strip further out


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
