"""The reader's second look: where the text lines sit inside its crop (pure; numpy and OpenCV only).

The reader's crop is loose on purpose (the banner's word lands a little higher
or lower, larger or smaller, from one capture to the next), but the
recogniser was trained on *tight* text-line crops cut out by a text detector.
A word that fills a third of its input's height, with scenery or other text
above and below it, reads far worse than the same word cut to its own line
(a Japanese ``勝利`` over mirrored text read −6.3 per letter in the loose crop
and −0.03 cut to its line). So, when the first reading is poor, the reader
runs the text *detector* that ships with its recogniser (PP-OCRv5 mobile
detection, trained on real text, like the recogniser) on the crop and reads
the largest lines it finds.

This module holds the pure parts: the detector's input (:func:`det_input`)
and the lines' boxes from its text-probability map (:func:`line_boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from services.inference import listcheck
from services.inference.vision import MIN_LINE as MIN_LINE

# PaddleOCR's detection normalisation (ImageNet statistics, applied to the BGR image as read)
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
STROKE_STEP = 16  # grey-level step between horizontal neighbours that a letter's stroke edge makes at least
STROKE_ROWS = 2  # rows of a column with such a step for the column to hold something text-like


@dataclass(frozen=True, slots=True)
class Box:
    """Pixel box inside the crop: rows ``y0:y1``, columns ``x0:x1``."""

    x0: int
    y0: int
    x1: int
    y1: int


def det_input(crop_bgr: npt.NDArray[np.uint8], height: int) -> npt.NDArray[np.float32]:
    """BGR crop → ``(1, 3, height, W)`` detector input, ``W`` the crop's aspect at ``height`` rounded to a
    multiple of 32 (the detector's stride)."""
    h, w = crop_bgr.shape[:2]
    width = max(32, round(w * height / max(1, h) / 32) * 32)
    resized = cv2.resize(crop_bgr, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    x = (resized.astype(np.float32) * np.float32(1.0 / 255.0) - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def line_boxes(prob: npt.NDArray[np.float32], crop_size: tuple[int, int], *, threshold: float, top: int,
               pad: float, min_line: float = MIN_LINE) -> list[Box]:
    """The ``top`` tallest text lines of the detector's ``(H, W)`` probability map as boxes in the crop
    (``crop_size`` = width, height), each widened by ``pad`` × its height on every side (the detector marks a
    line's core, narrower than its glyphs) and clipped to the crop; tallest first (ties: larger, then leftmost).
    A line whose core is lower than ``min_line`` of the map's height is left out.
    The banner's word is the largest type on the screen; a scene's own text lines are usually smaller, even
    when they are longer."""
    mh, mw = prob.shape
    cw, ch = crop_size
    sx, sy = cw / mw, ch / mh
    n, _, stats, _ = cv2.connectedComponentsWithStats((prob > threshold).astype(np.uint8), connectivity=8)
    # tallest first (the banner's word is the largest type on the screen), then the larger area, then leftmost
    found = sorted((stats[i].tolist() for i in range(1, n)), key=lambda s: (-s[3], -s[4], s[0], s[1]))
    out: list[Box] = []
    for x, y, bw, bh, _area in found:
        if bh < min_line * mh:
            continue
        margin = pad * bh
        box = Box(max(0, int((x - margin) * sx)), max(0, int((y - margin) * sy)),
                  min(cw, int(np.ceil((x + bw + margin) * sx))), min(ch, int(np.ceil((y + bh + margin) * sy))))
        if box.x1 - box.x0 >= 8 and box.y1 - box.y0 >= 8:
            out.append(box)
        if len(out) == top:
            break
    return out


def touches_side(line: npt.NDArray[np.uint8], within: int) -> bool:
    """Does something text-like reach the line's left or right side (``line``: BGR or grey)?

    A column holds something text-like when at least ``STROKE_ROWS`` of its rows step by ``STROKE_STEP`` grey
    levels or more to the next column (a letter's stroke edges; the list check's measure). True when such a
    column lies within ``within`` columns of either side: what is drawn there may go on beyond the crop — a
    word cut between two letters, which the recogniser's steps alone do not show (:func:`ctc.runs_off`).
    """
    grey = line.astype(np.int16).sum(axis=2) // 3 if line.ndim == 3 else line.astype(np.int16)
    if grey.shape[1] < 2:
        return False
    strokes = (np.abs(np.diff(grey, axis=1)) >= STROKE_STEP).sum(axis=0) >= STROKE_ROWS
    width = strokes.size
    return bool(strokes[:within].any() or strokes[max(0, width - within):].any())


def letter_rows(line: npt.NDArray[np.uint8], columns: tuple[int, int], share: float) -> int | None:
    """How many rows a word's letters take in ``line`` (BGR, at the recogniser's height): the fewest consecutive
    rows that hold ``share`` of the letter-like stroke edges within ``columns`` (``[start, end)``, the word's
    columns); None when those columns hold no such edge.

    A stroke edge is the list check's measure (:func:`listcheck.colour_steps` ≥ ``listcheck.TEXT_STEP``): a
    letter's stems and sides step across two columns. A whole word's edges run from its letters' tops to their
    baseline; a strip of a word — only its letters' tops or bottoms visible — holds them in a few rows. Scenery in
    the word's columns adds edges at other rows, so it can only make the count larger.
    """
    steps = listcheck.colour_steps(line)
    start, end = max(0, columns[0] - 1), min(steps.shape[1], columns[1] - 1)
    if end <= start:
        return None
    per_row = np.count_nonzero(steps[:, start:end] >= listcheck.TEXT_STEP, axis=1)
    total = int(per_row.sum())
    if total == 0:
        return None
    cumulative = np.concatenate(([0], np.cumsum(per_row)))
    need = share * total
    # for each first row, the first end row whose rows hold `need`; the shortest such run
    ends = np.searchsorted(cumulative, cumulative[:-1] + need - 1e-9, side="left")
    runs = ends - np.arange(per_row.size)
    return int(runs[ends <= per_row.size].min())
