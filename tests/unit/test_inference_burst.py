"""Which readings ask capture for a confirming frame (pure)."""

from __future__ import annotations

from services.inference.burst import is_candidate
from services.inference.classifier import Prediction


def pred(label: str, near_miss: str | None = None) -> Prediction:
    stages = {"gate": {"score": 0.9}, "reader": {"near_miss": near_miss}}
    return Prediction(label, 0.9, {label: 0.9}, stages)


def test_an_outcome_or_a_near_miss_is_a_candidate_a_gate_pass_alone_is_not() -> None:
    assert is_candidate(pred("victory")) and is_candidate(pred("draw"))
    assert is_candidate(pred("none", near_miss="defeat"))  # the banner is coming in: confirm it soon
    assert not is_candidate(pred("none"))  # the gate passed it, the reader saw nothing
    assert not is_candidate(Prediction("none", 0.99, {"none": 0.99}, {"gate": {"probs": {}}}))
