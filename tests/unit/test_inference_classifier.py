"""The classifier on tiny generated models (no network, no Redis)."""

from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.inference import vision
from services.inference.classifier import (
    Classifier,
    ClassifierError,
    resolve_providers,
    session_options,
)
from services.inference.group import salvage_identity as _salvage_identity
from tests.support.images import png_bomb
from tools.synthetic_model import write_synthetic_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_model(tmp_path_factory.mktemp("m") / "tiny.onnx", width=32, height=16, channels=(4, 8))


def _jpeg(width: int, height: int, seed: int = 0, fmt: str = ".jpg") -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (9, 9), 0)
    ok, buf = cv2.imencode(fmt, img)
    assert ok
    return bytes(buf.tobytes())


def test_predict_shapes_and_probabilities(model: Path) -> None:
    clf = Classifier(model)
    frames = [(_jpeg(640, 360, i), 640, 360) for i in range(5)]
    batch = np.stack([clf.preprocess(d, w, h) for d, w, h in frames])
    assert batch.shape == (5, 3, 16, 32) and batch.dtype == np.float32
    probs = clf.predict(batch)
    assert probs.shape == (5, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    preds = clf.postprocess(probs)
    assert [p.label for p in preds] == [clf.labels[i] for i in probs.argmax(axis=1)]
    assert all(set(p.probs) == {"none", "victory", "defeat", "draw"} for p in preds)
    assert all(0.0 <= p.confidence <= 1.0 for p in preds)
    # one at a time gives the same answers as the batch
    single = [clf.classify([f])[0] for f in frames]
    assert [p.label for p in single] == [p.label for p in preds]
    assert clf.input_name == "input" and clf.model_id.startswith("synthetic-untrained")


def test_fixed_batch_model_is_fed_one_frame_at_a_time(tmp_path: Path) -> None:
    path = write_synthetic_model(tmp_path / "fixed.onnx", width=32, height=16, channels=(4,), dynamic_batch=False)
    clf = Classifier(path)
    assert clf.max_batch == 1
    assert clf.predict(np.zeros((3, 3, 16, 32), np.float32)).shape == (3, 4)


def test_metadata_size_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    path = write_synthetic_model(
        tmp_path / "m.onnx", width=32, height=16, channels=(4,),
        meta_overrides={"input": {"width": 64, "height": 32}},
    )
    with pytest.raises(ClassifierError, match=r"disagree: the model's input is 32x16 .* metadata says 64x32"):
        Classifier(path)


def test_wrong_number_of_outputs_is_a_clear_error(tmp_path: Path) -> None:
    path = write_synthetic_model(tmp_path / "m.onnx", width=32, height=16, channels=(4,), n_outputs=3)
    with pytest.raises(ClassifierError, match=r"has 3 outputs .* expected 4"):
        Classifier(path)


def test_missing_metadata_and_missing_model(tmp_path: Path, model: Path) -> None:
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(model.read_bytes())
    with pytest.raises(ClassifierError, match=r"metadata .* is missing"):
        Classifier(lonely)
    with pytest.raises(ClassifierError, match="not found"):
        Classifier(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model.read_bytes())
    meta = json.loads(vision.meta_path_for(model).read_text())
    meta["labels"] = ["victory", "none", "defeat", "draw"]
    vision.meta_path_for(bad).write_text(json.dumps(meta))
    with pytest.raises(ClassifierError, match="labels"):
        Classifier(bad)


def test_provider_fallback_message(caplog: pytest.LogCaptureFixture, model: Path) -> None:
    with caplog.at_level(logging.WARNING, logger="owc.inference"):
        chosen = resolve_providers(["cuda", "directml", "cpu"], ["CPUExecutionProvider"])
    assert chosen == ["CPUExecutionProvider"]
    text = caplog.text
    assert "'cuda' (CUDAExecutionProvider) is not available" in text
    assert "'directml' (DmlExecutionProvider) is not available" in text
    assert "falling back" in text
    assert resolve_providers(["coreml"], ["CoreMLExecutionProvider", "CPUExecutionProvider"]) == [
        "CoreMLExecutionProvider", "CPUExecutionProvider",
    ]
    with pytest.raises(ClassifierError, match="unknown execution provider 'tpu'"):
        resolve_providers(["tpu"], ["CPUExecutionProvider"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="owc.inference"):
        clf = Classifier(model, providers=["coreml"])
    assert clf.providers == ["CPUExecutionProvider"]
    assert "'coreml' (CoreMLExecutionProvider) is not available" in caplog.text


def test_session_options_for_a_shared_pc() -> None:
    so = session_options(2)
    assert so.intra_op_num_threads == 2
    assert so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1280, 720), (640, 360)])
def test_preprocess_goes_through_vision(model: Path, width: int, height: int) -> None:
    clf = Classifier(model)
    data = _jpeg(width, height, 3)
    expected = vision.preprocess_bytes(data, clf.meta, width, height)
    np.testing.assert_array_equal(clf.preprocess(data, width, height), expected)
    two_step = clf.preprocess_image(clf.decode(data, width, height))
    np.testing.assert_array_equal(two_step, expected)
    # the reduced decode really is used for big JPEGs (tiny 32x16 input)
    assert vision.reduction_for(width, height, clf.meta) > 1


@pytest.mark.parametrize(
    "normalize",
    [
        {},
        {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        {"scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    ],
)
def test_lut_normalise_is_bit_identical_to_the_formula(normalize: dict[str, object]) -> None:
    meta = vision.ModelMeta.model_validate(
        {"model_id": "x", "roi": {"x0": 0.1, "y0": 0.2, "x1": 0.9, "y1": 0.7},
         "input": {"width": 40, "height": 24}, "normalize": normalize}
    )
    rng = np.random.default_rng(5)
    for shape in [(24, 40, 3), (97, 211, 3), (7, 9, 3)]:
        roi = rng.integers(0, 256, shape, dtype=np.uint8)
        got = vision.normalise(roi, meta)
        assert got.shape == (3, 24, 40) and got.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(got, vision.normalise_reference(roi, meta))


def test_undecodable_bytes_raise_frame_decode_error(model: Path) -> None:
    clf = Classifier(model)
    for data in (b"", b"not an image", b"\xff\xd8\xff\xe0garbage"):
        with pytest.raises(vision.FrameDecodeError):
            clf.preprocess(data, 640, 360)


def test_a_decompression_bomb_is_rejected_from_its_header_fast_and_without_decoding(model: Path) -> None:
    bomb = png_bomb(20000, 20000)  # decoded: 1.2 GB of BGR pixels
    assert len(bomb) < 200_000
    clf = Classifier(model)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for width, height in ((20000, 20000), (640, 360)):  # declared honestly, or lying about its size
        with pytest.raises(vision.FrameDecodeError, match="too large"):
            clf.decode(bomb, width, height)
        with pytest.raises(vision.FrameDecodeError, match="too large"):
            clf.preprocess(bomb, width, height)
    with pytest.raises(vision.FrameDecodeError, match="too large"):
        vision.decode(bomb)  # no declared size (owc predict): the hard cap still holds
    assert time.perf_counter() - started < 0.5
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib) / 1024
    assert grown_mib < 100, f"peak RSS grew by {grown_mib:.0f} MiB"


def test_the_pixel_cap_is_below_pillows_own_bomb_limit() -> None:
    side = int(vision.MAX_PIXELS**0.5) + 1  # just over the cap, far under Pillow's warning threshold
    with pytest.raises(vision.FrameDecodeError, match=f"{side}×{side}"):
        vision.decode(png_bomb(side, side))
    assert vision.check_size(png_bomb(4096, 4096)) == (4096, 4096)


def test_header_size_must_match_the_declared_frame_size(model: Path) -> None:
    clf = Classifier(model)
    for data in (_jpeg(640, 360), _jpeg(640, 360, fmt=".png")):
        assert clf.decode(data, 640, 360).ndim == 3
        with pytest.raises(vision.FrameDecodeError, match="header says 640×360 but the frame declares 1280×720"):
            clf.decode(data, 1280, 720)


def test_salvage_identity_of_malformed_frames() -> None:
    assert _salvage_identity({b"channel": b"main", b"seq": b"7", b"captured_at": b"12"}) == ("main", 7, 12)
    assert _salvage_identity({b"channel": b"main", b"seq": b"7", b"captured_at": b"x"}) == ("main", 7, 0)
    assert _salvage_identity({b"channel": b"bad:name", b"seq": b"7"}) is None
    assert _salvage_identity({b"seq": b"7"}) is None
    assert _salvage_identity({b"channel": b"main", b"seq": b"-1"}) is None
