"""The synthetic frame generator: seeded, realistic sizes, every class, both splits (no torch)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.inference.vision import MODEL_LABELS, preprocess_bytes
from training import synth
from training.config import INPUT, preprocess_meta
from training.dataset import to_float, to_uint8


def _decode(data: bytes) -> np.ndarray:  # type: ignore[type-arg]
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img  # type: ignore[no-any-return]


def test_same_seed_and_index_give_identical_frames() -> None:
    for index in (0, 1, 7):
        a = synth.render_sample(11, index, synth.TRAIN)
        b = synth.render_sample(11, index, synth.TRAIN)
        assert a[0] == b[0] and a[1:3] == b[1:3] and a[3] == b[3]


def test_different_seeds_or_splits_give_different_frames() -> None:
    a = synth.render_sample(11, 3, synth.TRAIN)[0]
    assert synth.render_sample(12, 3, synth.TRAIN)[0] != a
    assert synth.render_sample(11, 3, synth.EVAL)[0] != a


@pytest.mark.parametrize("split", [synth.TRAIN, synth.EVAL], ids=lambda s: s.name)
def test_frames_are_16_9_jpegs_of_the_declared_size_and_class(split: synth.Split) -> None:
    seen = set()
    for index in range(10):
        data, w, h, info = synth.render_sample(5, index, split)
        assert data[:2] == b"\xff\xd8"
        img = _decode(data)
        assert img.shape == (h, w, 3)
        assert (w, h) in synth.CAPTURE_SIZES
        assert abs(w / h - 16 / 9) < 0.01
        assert info["label"] == synth.label_for_index(index)
        seen.add(info["label"])
        x = preprocess_bytes(data, preprocess_meta(), w, h)
        assert x.shape == (3, INPUT.height, INPUT.width) and x.dtype == np.float32
    assert seen == set(MODEL_LABELS)


def test_hard_examples_are_seeded_and_cover_every_class() -> None:
    labels = set()
    for index in range(len(synth.HARD_CYCLE)):
        data, w, h, info = synth.render_hard_sample(3, index)
        assert data == synth.render_hard_sample(3, index)[0]
        assert info["label"] == synth.HARD_CYCLE[index]
        assert info["kind"].startswith("hard_")
        assert _decode(data).shape == (h, w, 3)
        labels.add(info["label"])
    assert labels == set(MODEL_LABELS)
    assert data != synth.render_sample(3, index, synth.TRAIN)[0]


def test_class_cycle_is_balanced_over_outcomes() -> None:
    counts = {lab: synth.CLASS_CYCLE.count(lab) for lab in MODEL_LABELS}
    assert counts["victory"] == counts["defeat"] == counts["draw"] > 0
    assert counts["none"] >= counts["victory"]


def test_splits_hold_out_fonts_and_photos() -> None:
    train_fonts = {f.file for f in (*synth.TRAIN.latin, *synth.TRAIN.cjk)}
    eval_fonts = {f.file for f in (*synth.EVAL.latin, *synth.EVAL.cjk)}
    assert not train_fonts & eval_fonts
    assert not set(synth.TRAIN.natural) & set(synth.EVAL.natural)
    assert set(synth.EVAL.backgrounds) - set(synth.TRAIN.backgrounds)
    # the Debian fonts are always there; the npm ones (training only) may not be in a runtime-only install
    assert synth.fonts_in_use(synth.TRAIN) and synth.fonts_in_use(synth.EVAL)
    assert "BebasNeue-Bold.otf" in synth.fonts_in_use(synth.TRAIN)


def test_a_missing_font_says_how_to_install_it() -> None:
    with pytest.raises(synth.FontMissingError, match="fonts-bebas-neue"):
        synth.font_file("NoSuchFont-Bold.otf")


def test_banner_is_drawn_where_the_game_puts_it() -> None:
    rng = np.random.default_rng(3)
    frame = np.zeros((360, 640, 3), np.float32)
    box = synth.draw_banner(frame, rng, "victory", synth.TRAIN, japanese=False, score=False)
    assert box.x0 >= 0.33 * 640 and box.x1 <= 0.69 * 640
    assert box.y0 >= 0.3 * 360 and box.y1 <= 0.6 * 360
    gold = frame[box.y0:box.y1, box.x0:box.x1].reshape(-1, 3)
    bright = gold[gold.max(axis=1) > 150]
    assert len(bright) > 100
    b, g, r = np.median(bright, axis=0)
    assert r > g > b  # gold: red > green > blue (BGR order)


def test_stored_pixels_round_trip_to_the_exact_model_input() -> None:
    meta = preprocess_meta()
    data, w, h, _ = synth.render_sample(2, 1, synth.TRAIN)
    x = preprocess_bytes(data, meta, w, h)
    assert np.array_equal(to_float(to_uint8(x, meta), meta), x)


def test_every_hard_negative_kind_draws_and_stays_none() -> None:
    from training.synth.negatives import NEGATIVE_KINDS, draw_negative

    for i, kind in enumerate(NEGATIVE_KINDS):
        rng = np.random.default_rng([9, i])
        frame = synth.background(rng, 640, 360, synth.EVAL).astype(np.float32)
        before = frame.copy()
        assert draw_negative(frame, rng, synth.EVAL, kind) == kind
        assert frame.shape == (360, 640, 3)
        if kind != "gameplay":
            assert np.abs(frame - before).mean() > 0.05, kind  # it drew something
    seen = {synth.render_sample(21, i, synth.TRAIN, label="none")[3]["kind"] for i in range(120)}
    assert len(seen) >= 10, seen


def test_both_splits_hold_thin_and_regular_weights() -> None:
    for split in (synth.TRAIN, synth.EVAL):
        names = " ".join(f.file for f in split.latin)
        assert any(w in names for w in ("300", "Thin", "Light")), split.name
        assert any(w in names for w in ("400", "Regular", "Book")), split.name


def test_daylight_scenes_are_bright_and_nothing_darkens_a_banner_scene() -> None:
    import inspect

    from training.synth import samples

    lum = [synth.bg_daylight(np.random.default_rng(s), 320, 180).mean() for s in range(8)]
    assert min(lum) > 130, lum
    src = inspect.getsource(samples)
    assert "shade_centre" not in src and "ensure_contrast" not in src


def test_recordings_quantise_and_block() -> None:
    from training.synth.capture import blocky, quantize

    rng = np.random.default_rng(1)
    img = synth.bg_daylight(rng, 320, 180)
    q = quantize(img, rng)
    assert q.shape == img.shape and len(np.unique(q.reshape(-1, 3), axis=0)) <= 256
    b = blocky(img, np.random.default_rng(2))
    assert b.shape == img.shape and not np.array_equal(b, img)
    kinds = {synth.render_sample(8, i, synth.EVAL)[3]["capture"] for i in range(60)}
    assert kinds == {"plain", "gif", "blocky", "rescaled"}


def test_sizes_include_small_captures_and_a_size_can_be_forced() -> None:
    assert {(480, 270), (640, 360), (800, 450)} <= set(synth.CAPTURE_SIZES)
    data, w, h, _info = synth.render_sample(3, 4, synth.EVAL, size=(640, 360))
    assert (w, h) == (640, 360) and _decode(data).shape == (360, 640, 3)


def test_the_tab_scoreboard_over_a_banner_keeps_its_outcome_label() -> None:
    tabs = [info for info in (synth.render_sample(12, i, synth.TRAIN)[3] for i in range(200))
            if info["kind"] in ("tab_banner", "tab_hidden")]
    assert tabs and all(t["label"] != "none" for t in tabs)


def test_banner_colour_is_independent_of_the_outcome() -> None:
    """Every outcome word comes in every colour of the palette (the real DRAW is red, like DEFEAT)."""
    from training.synth.banners import USUAL_COLOURS, outcome_colour_named
    from training.synth.base import PALETTE

    rng = np.random.default_rng(0)
    for label in synth.OUTCOMES:
        names = [outcome_colour_named(rng, label)[0] for _ in range(600)]
        assert set(names) == set(PALETTE), label
        assert all(n in PALETTE for n in USUAL_COLOURS[label])
    assert "red" in USUAL_COLOURS["draw"]


def test_grid_samples_name_their_cell_and_are_seeded() -> None:
    from training.synth.grid import CELLS, render_grid_sample

    for index in (0, 5, 333, len(CELLS) - 1):
        data, w, h, info = render_grid_sample(9, index, synth.EVAL, per_cell=1)
        assert (info["label"], info["colour"], info["weight"], info["scene"], info["lang"]) == CELLS[index]
        assert _decode(data).shape == (h, w, 3)
        assert render_grid_sample(9, index, synth.EVAL, per_cell=1)[0] == data
    # a quick grid spreads its cells over every outcome
    labels = {render_grid_sample(9, i, synth.EVAL, per_cell=1, step=240)[3]["label"] for i in range(3)}
    assert labels == set(synth.OUTCOMES)


def test_end_screen_is_dark_with_a_blue_glow_left_and_a_red_glow_right() -> None:
    from training.synth.scenes import bg_end_screen

    blue_left = red_right = 0
    for seed in range(20):
        img = bg_end_screen(np.random.default_rng(seed), 320, 180).astype(np.float32)
        assert img.mean() < 110
        left, right = img[:, :80].mean(axis=(0, 1)), img[:, -80:].mean(axis=(0, 1))  # BGR
        blue_left += left[0] > left[2]
        red_right += right[2] > right[0]
    assert blue_left >= 10 and red_right >= 10


def test_stream_overlays_are_drawn_over_the_frame() -> None:
    from training.synth.overlays import draw_stream_overlays

    for seed in range(6):
        frame = np.full((360, 640, 3), 128.0, np.float32)
        drawn = draw_stream_overlays(frame, np.random.default_rng(seed), synth.EVAL)
        assert drawn and set(drawn) <= {"webcam", "chat", "bar", "alert"}
        assert np.abs(frame - 128.0).max() > 50


def test_render_fingerprint_covers_code_fonts_photos_and_libraries() -> None:
    import dataclasses

    from training.synth.assets import PhotoMissingError, check_photos, fingerprint_digest, render_fingerprint

    fp = render_fingerprint(synth.TRAIN)
    assert set(fp) == {"code", "assets", "libraries"}
    assert "BebasNeue-Bold.otf" in fp["assets"] and {"pillow", "opencv", "numpy"} <= set(fp["libraries"])
    assert fingerprint_digest(synth.TRAIN) != fingerprint_digest(synth.EVAL)
    with pytest.raises(PhotoMissingError, match=r"no-such-photo\.png"):
        check_photos(dataclasses.replace(synth.EVAL, natural=("no-such-photo.png",)))


def test_text_is_laid_out_without_raqm() -> None:
    """The same text gives the same pixels whether or not the system has libraqm/fribidi."""
    from PIL import ImageFont

    from training.synth.fonts import load_font

    assert load_font("BebasNeue-Bold.otf", 0, 40).layout_engine == ImageFont.Layout.BASIC
