"""The reader's fast paths give exactly what the plain formulas give (the real pinned recogniser).

The reader is tuned for speed (the words' CTC layout built once, only their columns converted to
float64, a lookup table for the input scaling, no spelling for the list check's bands). None of that
may change a score: here the plain formulas, written out as they were before, read the same frames and
every word score, outcome score, spelling and list-check score must be equal, bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from services.common.config.settings import DEFAULT_MODEL
from services.inference import ctc, listcheck, vision
from services.inference.reader import Reader

META = vision.ModelMeta.load(vision.meta_path_for(DEFAULT_MODEL))


def _plain_ctc(probs: npt.NDArray[np.floating], words: Sequence[Sequence[int]]) -> npt.NDArray[np.float64]:
    """The forward algorithm as first written: the whole output to float64, the layout built per call."""
    n = len(words)
    p = np.asarray(probs, dtype=np.float64)
    t_steps = p.shape[0]
    ext = [ctc.extend(w) for w in words]
    s_max = max(len(e) for e in ext)
    idx = np.zeros((n, s_max), dtype=np.int64)
    valid = np.zeros((n, s_max), dtype=bool)
    skip = np.zeros((n, s_max), dtype=bool)
    for i, e in enumerate(ext):
        idx[i, : len(e)] = e
        valid[i, : len(e)] = True
        for s in range(2, len(e)):
            skip[i, s] = e[s] != ctc.BLANK and e[s] != e[s - 2]
    emit = np.maximum(p[:, idx], 1e-30) * valid
    alpha = np.zeros((n, s_max), dtype=np.float64)
    alpha[:, 0] = emit[0, :, 0]
    alpha[:, 1] = emit[0, :, 1]
    total = alpha.sum(axis=1)
    alpha /= total[:, None]
    log_scale = np.log(total)
    for t in range(1, t_steps):
        prev = alpha
        nxt = prev.copy()
        nxt[:, 1:] += prev[:, :-1]
        nxt[:, 2:] += prev[:, :-2] * skip[:, 2:]
        alpha = nxt * emit[t]
        total = alpha.sum(axis=1)
        total[total <= 0] = 1e-30
        alpha /= total[:, None]
        log_scale += np.log(total)
    lengths = np.array([len(e) for e in ext])
    rows = np.arange(n)
    end = alpha[rows, lengths - 1] + alpha[rows, lengths - 2]
    with np.errstate(divide="ignore"):
        out = np.log(end) + log_scale
    need = np.array([len(w) + sum(1 for a, b in itertools.pairwise(w) if a == b) for w in words])
    out[need > t_steps] = -np.inf
    return np.asarray(out, dtype=np.float64)


def _plain_line(reader: Reader, crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    h, w = crop.shape[:2]
    out_h = reader.spec.height
    out_w = max(out_h, min(reader.spec.max_width, math.ceil(out_h * w / max(1, h))))
    return np.asarray(cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if h > out_h else cv2.INTER_LINEAR))


def _plain_tensor(reader: Reader, crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    x = _plain_line(reader, crop).astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _plain_scores(reader: Reader, probs: npt.NDArray[np.float32]) -> tuple[dict[str, float], dict[str, float], str]:
    ll = _plain_ctc(probs, [codes for _, _, codes in reader.words])
    words: dict[str, float] = {}
    labels: dict[str, float] = {}
    for (label, word, codes), value in zip(reader.words, ll.tolist(), strict=True):
        score = max(-99.0, value / len(codes))
        words[word] = round(score, 4)
        if label != "none":
            labels[label] = max(labels.get(label, -99.0), round(score, 4))
    return words, labels, ctc.greedy_text(probs, reader.charset)


def _frames() -> list[tuple[bytes, int, int]]:
    """Outcome words and look-alikes where the banner goes, over busy scenes, at three capture sizes."""
    out = []
    sizes = [(640, 360), (1280, 720), (800, 450)]
    texts = ["VICTORY!", "DEFEAT", "DRAW", "DEFEND", "", "VICTORIES"]
    for i, (text, (w, h)) in enumerate(zip(texts, itertools.cycle(sizes), strict=False)):
        rng = np.random.default_rng(i)
        img = cv2.GaussianBlur(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (3, 3), 0)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        for _ in range(3):  # a banner line above and below in some frames: the list check's bands
            y = int(rng.uniform(0.15, 0.8) * h)
            cv2.putText(img, "DEFEAT" if i % 2 else "3 | 3", (int(0.4 * w), y), cv2.FONT_HERSHEY_SIMPLEX,
                        h / 500, (230, 230, 230), 2)
        if text:
            cv2.putText(img, text, (int(0.37 * w), int(0.5 * h)), cv2.FONT_HERSHEY_TRIPLEX, h / 220,
                        (40, 60, 235), max(2, h // 120))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        out.append((bytes(buf.tobytes()), w, h))
    return out


@pytest.fixture(scope="module")
def reader() -> Reader:
    """The first look alone (the second look, on the crop's text lines, and the whole-word look on a wider crop
    are pinned in test_inference_reader)."""
    assert META.reader is not None
    return Reader(META.reader.model_copy(update={"second_look": None, "widen": 0.0}))


def test_the_vocabulary_gives_the_plain_forward_algorithm_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    words = [[1, 2, 3], [2, 2], [4], [1, 3, 3, 2, 5, 6], [6, 5]]
    vocab = ctc.Vocabulary(words)
    for steps in (1, 2, 5, 16, 40):
        probs = rng.random((steps, 9)).astype(np.float32) ** 4
        probs /= probs.sum(axis=1, keepdims=True)
        got, want = vocab.log_likelihoods(probs), _plain_ctc(probs, words)
        assert np.array_equal(got, want), (steps, got, want)


def test_a_reading_and_its_list_check_equal_the_plain_formulas(reader: Reader) -> None:
    named = 0
    for data, w, h in _frames():
        reading, image = reader.read_frame(data, w, h)
        crop = vision.crop_roi(image, reader.spec.roi)
        tensor = _plain_tensor(reader, crop)
        assert np.array_equal(reader.tensor(crop), tensor)
        probs = np.asarray(reader.session.run(None, {reader.input_name: tensor})[0], dtype=np.float32)[0]
        words, labels, text = _plain_scores(reader, probs)
        assert (reading.words, reading.labels, reading.text) == (words, labels, text)
        named += max(labels.values()) > META.reader.accept  # type: ignore[union-attr]
        # the list check: each strip's best outcome score, read where it can hold text (a strip with none
        # scores NO_TEXT), until one reads as a list
        want_around: list[float] = []
        for band in listcheck.bands(reader.spec.roi):
            line = _plain_line(reader, vision.crop_roi(image, band))
            span = listcheck.text_span(line)
            if span is None:
                want_around.append(listcheck.NO_TEXT)
                continue
            x = line[:, span[0]:span[1]].astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
            out = reader.session.run(None, {reader.input_name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})
            want_around.append(max(_plain_scores(reader, np.asarray(out[0], np.float32)[0])[1].values()))
            if want_around[-1] >= META.reader.near_miss:  # type: ignore[union-attr]
                break
        assert reader.neighbours(image) == want_around
    assert named >= 2, "some frames read as an outcome word (else this pins only the rejections)"


def test_two_reader_threads_read_the_same(reader: Reader) -> None:
    """Two recogniser threads (``inference.intra_op_threads`` 2) only make a reading sooner, never different."""
    assert META.reader is not None
    two = Reader(META.reader.model_copy(update={"second_look": None, "widen": 0.0}), intra_op_threads=2)
    for data, w, h in _frames():
        one_reading, image = reader.read_frame(data, w, h)
        two_reading, _ = two.read_frame(data, w, h)
        assert (two_reading.words, two_reading.text) == (one_reading.words, one_reading.text)
        assert two.neighbours(image) == reader.neighbours(image)
