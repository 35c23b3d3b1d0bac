"""The reader's margin the model card publishes: banners' own word vs. negatives' best outcome word."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from services.inference.classifier import Prediction
from training.margin import BINS, margin, margin_lines


def _pred(scores: dict[str, float] | None) -> Prediction:
    stages: dict[str, Any] = {"gate": {"score": 0.9}}
    if scores is not None:
        stages["reader"] = {"scores": scores}
    return Prediction("none", 1.0, {}, stages)


def test_margin_takes_the_banners_own_word_and_the_negatives_best_outcome_word() -> None:
    labels = ["victory", "defeat", "draw", "none", "none", "none"]
    preds = [
        _pred({"victory": -0.5, "defeat": -6.0, "draw": -7.0}),
        _pred({"victory": -1.0, "defeat": -2.4, "draw": -5.0}),  # own word -2.4 although victory reads better
        _pred(None),  # not read (gate)
        _pred({"victory": -5.0, "defeat": -4.5, "draw": -9.0}),
        _pred({"victory": -3.0, "defeat": -8.0, "draw": -8.0}),
        _pred(None),
    ]
    m = margin(labels, preds, accept=-2.0, near_miss=-2.7)
    assert m["banners"]["read"] == 2 and m["banners"]["not_read"] == 1
    assert m["negatives"]["read"] == 2 and m["negatives"]["not_read"] == 1
    assert m["banners"]["min"] == -2.4 and m["negatives"]["max"] == -3.0
    # bins, best first: -0.5 in [-1, inf), -2.4 in [-2.7, -2); negatives -3.0 and -4.5 in [-4, -2.7) and [-6, -4)
    assert m["banners"]["bins"] == [1, 0, 1, 0, 0, 0]
    assert m["negatives"]["bins"] == [0, 0, 0, 1, 1, 0]
    assert sum(m["banners"]["bins"]) == m["banners"]["read"] and len(m["bins"]) == len(BINS)
    assert m["banners_above_negatives"] == 1.0 and m["banners_at_accept"] == 0.5
    assert m["negatives_at_accept"] == 0 and m["negatives_at_near_miss"] == 0
    assert math.isclose(m["gap"], -1.45 - (-4.5 + 0.99 * 1.5))  # median of [-2.4, -0.5] minus numpy's p99 of [-4.5, -3]


def test_an_overlap_shows_as_a_negative_gap_and_negatives_at_accept() -> None:
    labels = ["draw", "none"]
    m = margin(labels, [_pred({"draw": -2.5}), _pred({"draw": -1.5, "victory": -9.0})], accept=-2.0, near_miss=-2.7)
    assert m["gap"] < 0 and m["banners_above_negatives"] == 0.0 and m["negatives_at_accept"] == 1
    text = "\n".join(margin_lines(m))
    assert "| banners: own word |" in text and "highest **-1.50**" in text and "**-1.00**" in text


def test_no_read_frames_give_no_numbers_but_no_error() -> None:
    m = margin(["victory", "none"], [_pred(None), _pred(None)], accept=-2.0, near_miss=-2.7)
    assert m["banners"]["read"] == 0 and math.isnan(m["gap"]) and math.isnan(m["banners_above_negatives"])


def test_the_command_prints_the_shipped_detectors_margin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training import margin as margin_mod

    args = ["--eval-count", "24", "--cache-dir", str(tmp_path), "--json", str(tmp_path / "m.json")]
    assert margin_mod.main(args) == 0
    out = capsys.readouterr().out
    assert "24 held-out frames" in out and "| banners: own word |" in out
    m = json.loads((tmp_path / "m.json").read_text())
    read = m["banners"]["read"] + m["negatives"]["read"]
    assert read > 0 and read + m["banners"]["not_read"] + m["negatives"]["not_read"] == 24
