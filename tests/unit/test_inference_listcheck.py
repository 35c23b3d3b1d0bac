"""The list check (issue 21.4): a list of results is not the banner, a banner that sits high still is.

Geometry first (pure), then the real pinned reader on drawn frames: a career-history-like list whose
words are smaller than the banner's (as in the game) — the old check, one band as tall as the crop
each side and a neighbour at ``accept``, let such lists through — and a banner word placed higher
than the crop, which the old band above read as a neighbour of itself.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.common.config.settings import DEFAULT_MODEL
from services.inference import listcheck, vision
from services.inference.classifier import Classifier

META = vision.ModelMeta.load(vision.meta_path_for(DEFAULT_MODEL))
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-BoldOblique.ttf")
W, H = 800, 450
CANDIDATE = np.array([[0.0, 0.4, 0.3, 0.3]], np.float32)  # as if the gate passed the frame


def test_the_strips_lie_outside_the_crop_clear_of_it_and_inside_the_frame() -> None:
    roi = vision.Roi(x0=0.34, y0=0.36, x1=0.66, y1=0.57)
    bands = listcheck.bands(roi)
    tall = roi.y1 - roi.y0
    assert len(bands) == 2 * listcheck.PER_SIDE
    for b in bands:
        assert 0.0 <= b.y0 < b.y1 <= 1.0 and (b.x0, b.x1) == (roi.x0, roi.x1)
        assert b.y1 <= roi.y0 - 0.02 or b.y0 >= roi.y1 + 0.02  # clear of a word a little off the crop
        assert b.y1 - b.y0 == pytest.approx(tall * listcheck.STRIP)
    # a crop at the top of the frame: the strips above are cut off, never outside the frame
    top = listcheck.bands(vision.Roi(x0=0.3, y0=0.02, x1=0.7, y1=0.23))
    assert all(b.y0 >= 0.0 for b in top) and all(b.y0 >= 0.23 for b in top)


def _draw(words: list[tuple[str, float, float]], score_line: bool = False) -> bytes:
    """``(text, centre y, cap height)`` words, centred, on a dark screen (fractions of the frame)."""
    if not FONT.exists():
        pytest.skip(f"font {FONT} is not installed (make test installs it)")
    img = Image.new("RGB", (W, H), (38, 46, 84))
    draw = ImageDraw.Draw(img)
    for text, y, size in words:
        draw.rectangle((40, int(H * (y - 0.06)), W - 40, int(H * (y + 0.06))), fill=(28, 34, 66))
        draw.text((W * 0.5, H * y), text, fill=(235, 205, 60), font=ImageFont.truetype(str(FONT), int(H * size)),
                  anchor="mm")
    if score_line:
        draw.text((W * 0.5, H * 0.56), "3 | 2", fill=(240, 240, 240), font=ImageFont.truetype(str(FONT), int(H * 0.07)),
                  anchor="mm")
    ok, enc = cv2.imencode(".jpg", np.asarray(img)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(enc.tobytes())


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(DEFAULT_MODEL)


def test_a_list_of_medium_sized_results_is_not_the_banner(clf: Classifier) -> None:
    # rows 0.14 apart, words 0.07 tall: two of them inside the crop, the others above and below
    rows = [("VICTORY!", 0.12, 0.07), ("DEFEAT", 0.26, 0.07), ("DRAW", 0.40, 0.07), ("VICTORY!", 0.54, 0.07),
            ("DEFEAT", 0.68, 0.07), ("DRAW", 0.82, 0.07)]
    pred = clf.postprocess(CANDIDATE, [(_draw(rows), W, H)])[0]
    assert "scores" in pred.stages.get("list", {}), pred.stages
    assert pred.label == "none" and pred.read == "", pred.stages


def test_a_banner_that_sits_high_is_still_the_banner(clf: Classifier) -> None:
    # the word from y 0.32 to 0.44, its top above the crop (at 0.36), a score line under it: a banner, not
    # a list (the old band above, as tall as the crop and touching it, read the word itself at -0.9)
    pred = clf.postprocess(CANDIDATE, [(_draw([("DEFEAT", 0.38, 0.12)], score_line=True), W, H)])[0]
    assert pred.label == "defeat" and pred.confidence >= 0.9, pred.stages
    assert META.reader is not None and max(pred.stages["list"]["scores"]) < META.reader.near_miss


def test_only_the_columns_of_a_strip_that_can_hold_a_word_are_read() -> None:
    h = 48
    flat = np.full((h, 200, 3), 90, np.uint8)
    assert listcheck.text_span(flat) is None
    smooth = np.repeat(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], h, axis=0).repeat(3, axis=2)
    assert listcheck.text_span(smooth) is None  # a glow or a gradient: no stroke edges
    line = flat.copy()
    cv2.putText(line, "DRAW", (80, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (240, 240, 240), 2)
    ink = np.flatnonzero((line != 90).any(axis=(0, 2)))
    start, end = listcheck.text_span(line) or (0, 0)
    # (a step lies between two columns: the first edge counts from the column before the ink)
    assert ink[0] - 1 - listcheck.TEXT_MARGIN <= start <= ink[0] - listcheck.TEXT_MARGIN
    assert end >= ink[-1] + listcheck.TEXT_MARGIN
    assert end < 200  # the empty right part is not read
    # a speck: at least a square is read, inside the strip
    dot = flat.copy()
    dot[20:24, 196:199] = 255
    start, end = listcheck.text_span(dot) or (0, 0)
    assert (start, end) == (200 - h, 200)


def _text_span_reference(line: np.ndarray) -> tuple[int, int] | None:
    """:func:`listcheck.text_span` in plain numpy, as first written (the OpenCV one must match it exactly)."""
    h, w = line.shape[:2]
    x = line.astype(np.int16)
    if x.ndim == 2:
        x = x[:, :, None]
    steps = np.abs(x[:, 2:] - x[:, :-2]).max(axis=2) >= listcheck.TEXT_STEP
    cols = np.flatnonzero(steps.sum(axis=0) >= listcheck.TEXT_ROWS) + 1
    if cols.size == 0:
        return None
    start, end = max(0, int(cols[0]) - listcheck.TEXT_MARGIN), min(w, int(cols[-1]) + 1 + listcheck.TEXT_MARGIN)
    if end - start < h:
        centre = (start + end) // 2
        start = max(0, min(centre - h // 2, w - h))
        end = min(w, start + h)
    return start, end


def test_the_text_span_is_the_numpy_formulas_on_any_line() -> None:
    rng = np.random.default_rng(21)
    lines = [rng.integers(0, 256, (48, int(rng.integers(3, 320)), 3), dtype=np.uint8) for _ in range(60)]
    # sparse steps near the threshold: each channel alone, levels 0..40
    lines += [(rng.integers(0, 2, (48, 200, 3)) * rng.integers(0, 40)).astype(np.uint8) for _ in range(60)]
    lines += [rng.integers(0, 256, (48, int(rng.integers(3, 200))), dtype=np.uint8) for _ in range(20)]  # grey
    for line in lines:
        assert listcheck.text_span(line) == _text_span_reference(line)


def test_a_list_is_found_with_fewer_strips_read(clf: Classifier) -> None:
    # the strips after the first that reads as a list are not read: the verdict cannot change
    rows = [("VICTORY!", 0.12, 0.07), ("DEFEAT", 0.26, 0.07), ("DRAW", 0.40, 0.07), ("VICTORY!", 0.54, 0.07),
            ("DEFEAT", 0.68, 0.07), ("DRAW", 0.82, 0.07)]
    assert clf.reader is not None
    _, image = clf.reader.read_frame(_draw(rows), W, H)
    scores = clf.reader.neighbours(image)
    assert listcheck.is_list(scores, clf.reader.spec) and len(scores) < len(listcheck.bands(clf.reader.spec.roi))
    assert all(s < clf.reader.spec.near_miss for s in scores[:-1])


def test_a_coloured_word_on_a_blurred_capture_is_found_in_its_strip() -> None:
    # issue 21 (pool seed 2002, a career list on a blocky capture): a red word on a purple row differs little in
    # grey and a blurred edge spreads over a few pixels, so no column stepped 16 grey levels to the next: the strip
    # was not read and the list was counted. Per colour channel and across two columns, its columns hold text.
    h = 48
    line = np.zeros((h, 220, 3), np.uint8)
    line[:] = (80, 50, 80)  # BGR purple
    cv2.putText(line, "DEFEAT", (50, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (60, 40, 230), 3)  # red
    line = cv2.GaussianBlur(line, (0, 0), 1.6)
    grey = line.astype(np.int16).sum(axis=2) // 3
    assert (np.abs(np.diff(grey, axis=1)) >= listcheck.TEXT_STEP).sum(axis=0).max() < listcheck.TEXT_ROWS  # grey: none
    span = listcheck.text_span(line)
    assert span is not None and span[0] <= 50 and span[1] >= 150


def test_three_strips_a_side_reach_the_row_after_next_whole() -> None:
    # rows 0.18 of the frame apart, the crop's row high in it (0.38-0.45): the next row (0.56-0.64) straddles the crop
    # and the first strip, and the one after (ink at 0.73-0.81) must lie whole inside some strip
    roi = vision.Roi(x0=0.34, y0=0.36, x1=0.66, y1=0.57)
    below = [b for b in listcheck.bands(roi) if b.y0 >= roi.y1]
    assert len(below) == listcheck.PER_SIDE == 3
    assert any(b.y0 <= 0.73 and b.y1 >= 0.81 for b in below)

