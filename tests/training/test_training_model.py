"""The shipped detector: contract, metadata, and behaviour on fresh held-out frames and the demo clip (no torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from services.inference.banner import Schedule
from services.inference.classifier import Classifier
from services.inference.vision import MODEL_LABELS, ModelMeta, preprocess_bytes, reduction_for, softmax
from training import demo_clip, synth
from training.config import META_PATH, MODEL_PATH
from training.detector import LOOK_DEFAULTS, detector_id

MIN_CONFIDENCE = 0.9
GATE_THRESHOLD = 0.2  # a candidate for the reader at 1 - p(none) >= this
NONE_CANDIDATES = 0.35  # share of held-out none frames (mostly hard negatives) allowed through
# the gate of the detectors up to vc-336a14ea5481 (trained on unpinned renders): their ids hash its ONNX
UNPINNED_GATE_SHA = "38d665f7470b46f84ab53450562577bdd521def28c73a53c3ad18d3581a42aab"


@pytest.fixture(scope="module")
def meta() -> ModelMeta:
    return ModelMeta.load(META_PATH)


@pytest.fixture(scope="module")
def sess() -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(MODEL_PATH), sess_options=opts, providers=["CPUExecutionProvider"])


def _probs(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return softmax(sess.run(None, {sess.get_inputs()[0].name: x})[0])


@pytest.fixture(scope="module")
def detector() -> Classifier:
    return Classifier(MODEL_PATH)


def test_metadata_matches_the_contract(meta: ModelMeta) -> None:
    assert meta.schema_version == 2 and meta.gate is not None and meta.reader is not None
    assert tuple(meta.labels) == MODEL_LABELS
    gate_sha = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    assert (meta.model_extra or {})["onnx"]["sha256"] == gate_sha
    # the id covers every stage: the gate's weights, the reader's files, every threshold and word
    stages = (meta.gate.model_dump(mode="json"), meta.reader.model_dump(mode="json"))
    assert meta.model_id == detector_id(gate_sha, *stages, (meta.model_extra or {}).get("schedule"))
    # every word of both clients, English and Japanese, is read
    words = {w for ws in meta.reader.words.values() for w in ws}
    assert {"VICTORY!", "DEFEAT", "DRAW", "勝利！", "敗北", "引き分け"} <= words
    assert not words & set(meta.reader.lookalikes)
    assert meta.input.width <= 299 and meta.input.height <= 299
    roi = meta.roi
    assert roi.x0 <= 0.38 and roi.x1 >= 0.64 and roi.y0 <= 0.35 and roi.y1 >= 0.56  # the banner fits
    training = (meta.model_extra or {}).get("training")
    assert isinstance(training, dict) and training.get("command")
    assert MODEL_PATH.stat().st_size <= 1_000_000
    # a default 640x360 capture decodes at reduced scale
    assert reduction_for(640, 360, meta) >= 2


def test_the_second_looks_new_keys_at_their_defaults_leave_the_id_alone(meta: ModelMeta) -> None:
    """``second_look.above`` and ``whole`` are written only when set: a detector without them keeps its id (and
    metadata), so older detectors re-assembled by ``python -m training.detector`` are the same detectors."""
    assert meta.gate is not None and meta.reader is not None and meta.reader.second_look is not None
    gate_sha = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    gate, reader = meta.gate.model_dump(mode="json"), meta.reader.model_dump(mode="json", exclude_none=True)
    old = {k: v for k, v in reader["second_look"].items() if k not in LOOK_DEFAULTS}
    with_defaults = {**reader, "second_look": {**old, **LOOK_DEFAULTS}}
    without = {**reader, "second_look": old}
    assert detector_id(gate_sha, gate, with_defaults) == detector_id(gate_sha, gate, without)
    assert detector_id(gate_sha, gate, reader) != detector_id(gate_sha, gate, without)  # set, they are part of it


def test_onnx_io_is_nchw_float_with_dynamic_batch(sess: ort.InferenceSession, meta: ModelMeta) -> None:
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert inp.type == "tensor(float)"
    assert inp.shape[1:] == [3, meta.input.height, meta.input.width]
    assert not isinstance(inp.shape[0], int)
    assert out.shape[1] == len(MODEL_LABELS)
    for batch in (1, 5):
        x = np.zeros((batch, 3, meta.input.height, meta.input.width), np.float32)
        assert sess.run(None, {inp.name: x})[0].shape == (batch, 4)


def test_fresh_held_out_frames(detector: Classifier) -> None:
    """Frames from the held-out split with a seed neither training nor the card used, through both stages.

    Generator v6's held-out split is deliberately hard (thin type on bright scenes, GIF
    palettes, stream blocking, the Tab scoreboard over the banner, entry flashes), so a
    share of outcome frames is read below ``MIN_CONFIDENCE`` or not at all; counting only
    needs two confident frames of a banner that stays up for seconds. What must hold:
    never a confident false outcome, never the wrong outcome, the gate passes (almost)
    every banner to the reader, and most outcome frames are read right and confidently.
    The card (``make eval``) gives the same over 3000 frames.
    """
    frames, ys = [], []
    for index in range(120):
        data, w, h, info = synth.render_sample(777, index, synth.EVAL)
        frames.append((data, w, h))
        ys.append(info["label"])
    preds = detector.classify(frames)
    pairs = list(zip(preds, ys, strict=True))
    # generator v7 (any colour, end screens, streamers' overlays) is harder for the reader than v6: the card
    # gives detector accuracy 0.835 over 3000 held-out frames; these 120 gave 0.78
    assert sum(p.label == y for p, y in pairs) / len(pairs) >= 0.75, [(y, p.label, p.stages) for p, y in pairs]
    for p, y in pairs:
        if y == "none":
            assert p.label == "none" or p.confidence < MIN_CONFIDENCE, p
        else:
            assert p.label in ("none", y), (y, p)  # missed at worst, never another outcome
    outcomes = [p for p, y in pairs if y != "none"]
    assert sum("reader" in p.stages for p in outcomes) / len(outcomes) >= 0.95  # the gate's recall
    confident = [p.confidence >= MIN_CONFIDENCE for p, y in pairs if y != "none" and p.label == y]
    assert sum(confident) / len(confident) >= 0.85


def test_the_gate_passes_banners_on(sess: ort.InferenceSession, meta: ModelMeta) -> None:
    """Fresh held-out frames through the gate alone.

    The CNN is the detector's gate: its score ``1 - p(none)`` must pass (almost) every
    banner on to the reader — thin, faint, entry, GIF, blocky, half behind the Tab
    scoreboard — while most ``none`` frames stay below it, and it never confidently calls a
    banner another outcome. (``tab_hidden`` banners, mostly hidden by the scoreboard, may go
    either way.) The card reports the same over 3000 frames; 120 frames keep the sampling
    noise inside these bounds.
    """
    xs, ys, kinds = [], [], []
    for index in range(120):
        data, w, h, info = synth.render_sample(777, index, synth.EVAL)
        xs.append(preprocess_bytes(data, meta, w, h))
        ys.append(MODEL_LABELS.index(info["label"]))
        kinds.append(info["kind"])
    probs = _probs(sess, np.stack(xs))
    y = np.asarray(ys)
    pred = probs.argmax(1)
    gate = 1 - probs[:, 0]
    outcome = y > 0
    visible = outcome & (np.asarray(kinds) != "tab_hidden")
    assert (gate[visible] >= GATE_THRESHOLD).mean() >= 0.97, gate[visible].round(3).tolist()
    # the gate's own class is not used (the reader decides); v7's hue-free gate: 0.92 on these 120
    assert (pred == y).mean() >= 0.88, list(zip(y.tolist(), pred.tolist(), strict=True))
    other = outcome & (pred > 0) & (pred != y) & (probs.max(1) >= MIN_CONFIDENCE)
    assert not other.any(), probs[other]
    none = ~outcome
    assert (gate[none] >= GATE_THRESHOLD).mean() <= NONE_CANDIDATES, gate[none].round(3).tolist()
    assert probs[none, 1:].max() < MIN_CONFIDENCE


def test_demo_clip_frames(detector: Classifier) -> None:
    frames = demo_clip.render_frames()
    assert len(frames) == demo_clip.FRAME_COUNT
    preds = detector.classify([(d, demo_clip.WIDTH, demo_clip.HEIGHT) for d in frames])
    for i, p in enumerate(preds):
        if demo_clip.frame_label(i) == "none":
            assert p.label == "none" or p.confidence < MIN_CONFIDENCE, (i, p)
        elif i >= demo_clip.BANNER_START + demo_clip.ENTRY_FRAMES:
            assert p.label == "victory" and p.confidence >= MIN_CONFIDENCE, (i, p)
        else:  # the entry animation: victory or not yet recognised, never another outcome
            assert p.label in ("none", "victory"), (i, p)


def test_ensure_demo_clip_writes_a_sorted_folder_once(tmp_path: Path) -> None:
    folder = demo_clip.ensure_demo_clip(tmp_path / "clip")
    files = sorted(folder.glob("*.jpg"))
    assert len(files) == demo_clip.FRAME_COUNT
    assert files[0].name == "frame_0000.jpg"
    first = files[demo_clip.BANNER_START].stat().st_mtime_ns
    assert demo_clip.ensure_demo_clip(folder) == folder  # already there: not rewritten
    assert files[demo_clip.BANNER_START].stat().st_mtime_ns == first
    assert demo_clip.DEMO_RESULT == {"victories": 1, "defeats": 0, "draws": 0}
    assert sum(demo_clip.frame_label(i) == "victory" for i in range(demo_clip.FRAME_COUNT)) == demo_clip.BANNER_FRAMES


def test_demo_clip_is_deterministic() -> None:
    a = demo_clip.render_frames()
    b = demo_clip.render_frames()
    assert a == b


def test_the_gate_cannot_see_hue(sess: ort.InferenceSession, meta: ModelMeta) -> None:
    """The gate's first layer keeps each pixel's brightest and darkest channel only.

    Swapping colour channels gives exactly the same scores, and a banner frame rotated to
    other hues (HSV, brightness and saturation kept) scores as it did: a red DRAW is a white
    or gold DRAW to the gate.
    """
    import cv2

    frames = [synth.render_sample(31, i, synth.EVAL) for i in range(1, 12, 2)]
    x = np.stack([preprocess_bytes(d, meta, w, h) for d, w, h, _ in frames])
    base = _probs(sess, x)
    for perm in ((2, 1, 0), (1, 2, 0), (0, 2, 1)):
        assert np.array_equal(_probs(sess, np.ascontiguousarray(x[:, perm])), base)
    img = cv2.imdecode(np.frombuffer(frames[0][0], np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    scores = []
    for shift in (0, 30, 60, 90, 120, 150):
        rot = hsv.copy()
        rot[:, :, 0] = ((rot[:, :, 0].astype(np.int32) + shift) % 180).astype(np.uint8)
        png = cv2.imencode(".png", cv2.cvtColor(rot, cv2.COLOR_HSV2BGR))[1].tobytes()
        p = _probs(sess, preprocess_bytes(png, meta, img.shape[1], img.shape[0])[None])
        scores.append(1 - float(p[0, 0]))
    assert max(scores) - min(scores) < 0.05, scores


def _red_draw_end_screen(seed: int) -> tuple[bytes, int, int]:
    """A frame like the first real DRAW: red slanted DRAW on the dark end screen, `3 | 3`, FINAL SCORE, overlays."""
    from training.synth.banners import TextStyle, draw_banner
    from training.synth.base import PALETTE, colour
    from training.synth.capture import jpeg
    from training.synth.overlays import draw_bar, draw_chat, draw_webcam
    from training.synth.scenes import bg_end_screen

    rng = np.random.default_rng(seed)
    frame = bg_end_screen(rng, 960, 540).astype(np.float32)
    draw_banner(frame, rng, "draw", synth.EVAL, japanese=False, centre=(480.0, 227.0), cap_frac=0.11,
                style=TextStyle(stroke=-0.01, edge=0.2), colour_rgb=colour(rng, PALETTE["red"]), final=True)
    draw_chat(frame, rng, synth.EVAL)
    draw_webcam(frame, rng, synth.EVAL)
    draw_bar(frame, rng, synth.EVAL)
    import cv2

    img = np.asarray(cv2.resize(np.clip(frame, 0, 255).astype(np.uint8), (1920, 1080)), np.uint8)
    return cv2.imencode(".jpg", jpeg(img, 90))[1].tobytes(), 1920, 1080


def test_a_red_draw_on_the_end_screen_under_a_streamers_overlays_is_read(detector: Classifier) -> None:
    """The frame the v6 gate missed (0.267 < 0.3): it must reach the reader and be read as a draw."""
    frames = [_red_draw_end_screen(seed) for seed in range(4)]
    for p in detector.classify(frames):
        assert "reader" in p.stages and p.label == "draw", p


def test_a_detector_without_the_letters_height_check_keeps_its_id(meta: ModelMeta) -> None:
    """``reader.letter_height`` is written only when set (issue 21.4): the detector before it re-assembles to its own
    id, and the check is part of the id once set."""
    assert meta.gate is not None and meta.reader is not None and meta.reader.letter_height is not None
    gate_sha = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    gate, reader = meta.gate.model_dump(mode="json"), meta.reader.model_dump(mode="json", exclude_none=True)
    without = {k: v for k, v in reader.items() if k != "letter_height"}
    assert detector_id(gate_sha, gate, {**reader, "letter_height": None}) == detector_id(gate_sha, gate, without)
    assert detector_id(gate_sha, gate, reader) != detector_id(gate_sha, gate, without)


def test_a_detector_without_the_unsure_reuse_keeps_its_id(meta: ModelMeta) -> None:
    """``schedule.unsure_reuse_s`` is written only when set (issue 21, 2026-12-07): without it the schedule written,
    and so the id, is that of the detector before it (``vc-23b9d79f5d58``); set, it is part of the id."""
    assert meta.gate is not None and meta.reader is not None
    schedule = dict((meta.model_extra or {})["schedule"])
    assert schedule["unsure_reuse_s"] == 0.0
    without = {k: v for k, v in schedule.items() if k not in ("unsure_reuse_s", "fresh_confirm")}
    assert Schedule.model_validate(without).model_dump(mode="json", exclude_none=True) == without
    gate_sha = UNPINNED_GATE_SHA  # the gate those detectors shipped with
    gate, reader = meta.gate.model_dump(mode="json"), _before_placing(meta)
    assert detector_id(gate_sha, gate, reader, without) == "vc-23b9d79f5d58"
    assert detector_id(gate_sha, gate, reader, _before_fresh(meta)) == "vc-5dad7766dfdf"


def _before_fresh(meta: ModelMeta) -> dict[str, Any]:
    """The schedule without ``fresh_confirm`` (2026-12-07, night), as a detector before it is written."""
    return {k: v for k, v in (meta.model_extra or {})["schedule"].items() if k != "fresh_confirm"}


def _before_placing(meta: ModelMeta) -> dict[str, Any]:
    """The reader's metadata without the keys of 2026-12-07 (the second look's ``placed`` and ``widen``, the wider
    crop's ``widen_above``) — at their defaults, as a detector before them is written."""
    assert meta.reader is not None and meta.reader.second_look is not None
    reader = meta.reader.model_dump(mode="json")
    look = {**reader["second_look"], "placed": False, "widen": 0.0, "min_line": 0.1}
    return {**reader, "second_look": look, "widen_above": 0.0}


def _before_sizing(meta: ModelMeta) -> dict[str, Any]:
    """The reader's metadata without the second look's ``min_line`` (2026-12-07, afternoon): at its default, as a
    detector before it is written."""
    assert meta.reader is not None and meta.reader.second_look is not None
    reader = meta.reader.model_dump(mode="json")
    return {**reader, "second_look": {**reader["second_look"], "min_line": 0.1}}


def test_a_detector_without_placing_the_second_looks_words_keeps_its_id(meta: ModelMeta) -> None:
    """``second_look.placed``, ``second_look.widen`` and ``reader.widen_above`` are written only when set (issue 21,
    2026-12-07, the live run): at their defaults the id is that of the detector before them (``vc-5dad7766dfdf``);
    set, they are part of it."""
    assert meta.gate is not None and meta.reader is not None and meta.reader.second_look is not None
    look = meta.reader.second_look
    assert look.placed and look.widen > 0 and meta.reader.widen_above > 0
    gate_sha = UNPINNED_GATE_SHA  # the gate those detectors shipped with
    gate, schedule = meta.gate.model_dump(mode="json"), _before_fresh(meta)
    assert detector_id(gate_sha, gate, _before_placing(meta), schedule) == "vc-5dad7766dfdf"
    assert detector_id(gate_sha, gate, _before_sizing(meta), schedule) == "vc-c9a2f7ddb5e9"


def test_a_detector_without_the_fresh_confirmation_keeps_its_id(meta: ModelMeta) -> None:
    """``schedule.fresh_confirm`` is written only when set (2026-12-07, night): without it the id is that of the
    detector before it (``vc-c9a2f7ddb5e9``); set, it is part of the id."""
    assert meta.gate is not None and meta.reader is not None
    assert (meta.model_extra or {})["schedule"]["fresh_confirm"] is True
    without = _before_fresh(meta)
    assert Schedule.model_validate(without).model_dump(mode="json", exclude_none=True) == without
    gate_sha = UNPINNED_GATE_SHA  # the gate those detectors shipped with
    gate, reader = meta.gate.model_dump(mode="json"), _before_sizing(meta)
    assert detector_id(gate_sha, gate, reader, without) == "vc-c9a2f7ddb5e9" != meta.model_id


def test_a_detector_without_the_second_looks_least_line_keeps_its_id(meta: ModelMeta) -> None:
    """``second_look.min_line`` is written only when set (2026-12-07, afternoon): at its default (a tenth, any line but
    a speck) the id is that of the detector before it (``vc-336a14ea5481``, with the gate it shipped with); set, it is
    part of the id."""
    assert meta.gate is not None and meta.reader is not None and meta.reader.second_look is not None
    assert meta.reader.second_look.min_line > 0.1
    gate, schedule = meta.gate.model_dump(mode="json"), (meta.model_extra or {})["schedule"]
    assert detector_id(UNPINNED_GATE_SHA, gate, _before_sizing(meta), schedule) == "vc-336a14ea5481"
    gate_sha = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    assert detector_id(gate_sha, gate, meta.reader.model_dump(mode="json"), schedule) == meta.model_id


def test_the_gate_was_trained_pinned(meta: ModelMeta) -> None:
    """The shipped gate was trained with torch's and rendering's kernels pinned (docs/training.md, *On another CPU*):
    its JSON records both pins, and its ONNX is not the unpinned gate of the detectors up to ``vc-336a14ea5481``."""
    training = (meta.model_extra or {})["training"]
    assert training["kernels"] and training["render_kernels"]
    assert hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest() != UNPINNED_GATE_SHA
