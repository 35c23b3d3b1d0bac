"""The reader's second look, pure parts: the text detector's input and the lines' boxes from its map."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from services.common.config.settings import DEFAULT_MODEL
from services.inference import textline, vision


def _map(h: int, w: int, *rects: tuple[int, int, int, int, float]) -> np.ndarray:
    """A drawn probability map: each rect (x0, y0, x1, y1, p) filled with p on a 0.05 background."""
    prob = np.full((h, w), 0.05, np.float32)
    for x0, y0, x1, y1, p in rects:
        prob[y0:y1, x0:x1] = p
    return prob


def test_the_largest_line_comes_first_scaled_to_the_crop_with_its_margin() -> None:
    # map 64x192 for a crop of 96x288 (scale 1.5); a big line and a small one above it
    prob = _map(64, 192, (40, 30, 150, 50, 0.9), (10, 4, 40, 12, 0.8))
    boxes = textline.line_boxes(prob, (288, 96), threshold=0.3, top=2, pad=0.5)
    assert boxes[0] == textline.Box(x0=int((40 - 10) * 1.5), y0=int((30 - 10) * 1.5),
                                    x1=int(np.ceil((150 + 10) * 1.5)), y1=int(np.ceil((50 + 10) * 1.5)))
    assert boxes[1] == textline.Box(x0=int(6 * 1.5), y0=0, x1=int(np.ceil(44 * 1.5)), y1=int(np.ceil(16 * 1.5)))


def test_only_the_top_lines_are_kept_and_specks_and_faint_areas_are_not_lines() -> None:
    prob = _map(64, 192, (10, 10, 60, 30, 0.9), (80, 10, 120, 30, 0.9), (130, 40, 180, 60, 0.9),
                (5, 50, 8, 53, 0.9),  # a speck: lower than a tenth of the map
                (0, 0, 192, 8, 0.2))  # below the threshold
    boxes = textline.line_boxes(prob, (192, 64), threshold=0.3, top=2, pad=0.0)
    assert boxes == [textline.Box(10, 10, 60, 30), textline.Box(130, 40, 180, 60)]  # equal areas: leftmost first
    assert len(textline.line_boxes(prob, (192, 64), threshold=0.3, top=4, pad=0.0)) == 3


def test_a_line_lower_than_min_line_of_the_map_is_not_kept() -> None:
    """``second_look.min_line``: the banner's word is large type; a list's row of small print under it is a line of
    its own only down to ``min_line`` of the map's height (the default: a tenth, any line but a speck)."""
    prob = _map(64, 192, (10, 8, 150, 38, 0.9),  # a banner's word: 30 rows of 64
                (20, 46, 120, 54, 0.9))  # a row of small print: 8 rows (0.125)
    word, row = textline.Box(10, 8, 150, 38), textline.Box(20, 46, 120, 54)
    assert textline.line_boxes(prob, (192, 64), threshold=0.3, top=2, pad=0.0) == [word, row]
    assert textline.line_boxes(prob, (192, 64), threshold=0.3, top=2, pad=0.0, min_line=0.125) == [word, row]
    assert textline.line_boxes(prob, (192, 64), threshold=0.3, top=2, pad=0.0, min_line=0.15) == [word]
    assert textline.line_boxes(prob, (192, 64), threshold=0.3, top=2, pad=0.0, min_line=0.5) == []


def test_boxes_are_clipped_to_the_crop_and_an_empty_map_has_none() -> None:
    prob = _map(32, 96, (0, 0, 96, 32, 0.9))
    assert textline.line_boxes(prob, (300, 100), threshold=0.3, top=2, pad=1.0) == [textline.Box(0, 0, 300, 100)]
    assert textline.line_boxes(_map(32, 96), (300, 100), threshold=0.3, top=2, pad=0.4) == []


def test_the_detector_input_keeps_the_aspect_in_steps_of_32_and_normalises_like_paddleocr() -> None:
    crop = np.zeros((75, 204, 3), np.uint8)
    crop[:, :, 0] = 255  # blue, in BGR
    x = textline.det_input(crop, 64)
    assert x.shape == (1, 3, 64, 160) and x.dtype == np.float32  # 204 * 64 / 75 = 174 -> 160
    assert x[0, 0, 0, 0] == pytest.approx((1.0 - 0.485) / 0.229)
    assert x[0, 1, 0, 0] == pytest.approx(-0.456 / 0.224)
    assert textline.det_input(np.zeros((48, 20, 3), np.uint8), 64).shape == (1, 3, 64, 32)


def test_the_second_look_is_checked_in_the_metadata() -> None:
    spec = vision.ModelMeta.load(vision.meta_path_for(DEFAULT_MODEL)).reader
    assert spec is not None
    raw = spec.model_dump(mode="json")
    look = {"model": "models/ppocrv5/det/det.onnx", "model_sha256": "0" * 64}
    assert vision.ReaderSpec.model_validate({**raw, "second_look": look}).second_look is not None
    with pytest.raises(ValidationError, match="multiple of 32"):
        vision.ReaderSpec.model_validate({**raw, "second_look": {**look, "height": 50}})
    with pytest.raises(ValidationError, match="from_score must be below"):
        vision.ReaderSpec.model_validate({**raw, "second_look": {**look, "from_score": spec.accept}})
    # the raised area: at most 0.2 of the frame above the crop, never below it
    assert vision.ReaderSpec.model_validate({**raw, "second_look": {**look, "above": 0.04}}).second_look.above == 0.04  # type: ignore[union-attr]
    # the raised area read whole: never, always or only when the detector found a line in it
    for whole in (False, True, "lines"):
        parsed = vision.ReaderSpec.model_validate({**raw, "second_look": {**look, "whole": whole}}).second_look
        assert parsed is not None and parsed.whole == whole
    with pytest.raises(ValidationError, match="whole"):
        vision.ReaderSpec.model_validate({**raw, "second_look": {**look, "whole": "sometimes"}})
    for above in (-0.01, 0.25):
        with pytest.raises(ValidationError, match="above"):
            vision.ReaderSpec.model_validate({**raw, "second_look": {**look, "above": above}})


def _strokes(width: int, *columns: int) -> np.ndarray:
    """A 48-row grey line, flat at 120, with a dark 2-px stroke (rows 10-30) at each of ``columns``."""
    line = np.full((48, width), 120, np.uint8)
    for x in columns:
        line[10:30, x:x + 2] = 20
    return line


def test_strokes_that_reach_a_side_may_run_on_beyond_the_crop() -> None:
    assert not textline.touches_side(_strokes(130, 20, 60, 100), 4)  # a word inside the crop
    assert textline.touches_side(_strokes(130, 60, 127), 4)  # a stroke at the right side
    assert textline.touches_side(_strokes(130, 1, 60), 4)  # at the left side
    assert not textline.touches_side(_strokes(130, 6, 120), 4)  # near, not within 4 columns
    assert textline.touches_side(_strokes(130, 6, 120), 8)
    assert not textline.touches_side(np.full((48, 130), 200, np.uint8), 4)  # a flat line holds nothing
    smooth = np.tile(np.linspace(0, 255, 130).astype(np.uint8), (48, 1))  # a gradient is no stroke
    assert not textline.touches_side(smooth, 4)
    assert textline.touches_side(np.dstack([_strokes(130, 127)] * 3), 4)  # BGR too


def test_a_words_letters_take_the_rows_that_hold_most_of_its_stroke_edges() -> None:
    line = np.full((48, 120, 3), 200, np.uint8)
    for x in range(20, 100, 10):  # letters' stems 20 rows tall
        line[12:32, x:x + 3] = 40
    assert textline.letter_rows(line, (15, 105), 0.9) in (18, 19, 20)
    strip = np.full((48, 120, 3), 200, np.uint8)
    for x in range(20, 100, 10):  # only their tops: 4 rows
        strip[12:16, x:x + 3] = 40
    assert textline.letter_rows(strip, (15, 105), 0.9) == 4
    # scenery elsewhere in the word's columns only makes the letters taller; outside them it does not count
    busy = strip.copy()
    busy[36:46, 30:90:4] = 0
    assert (rows := textline.letter_rows(busy, (15, 105), 0.9)) is not None and rows > 20
    busy = strip.copy()
    busy[36:46, 108:118:4] = 0
    assert textline.letter_rows(busy, (15, 105), 0.9) == 4
    assert textline.letter_rows(np.full((48, 120, 3), 200, np.uint8), (15, 105), 0.9) is None  # no edges
    assert textline.letter_rows(line, (60, 60), 0.9) is None  # no columns
