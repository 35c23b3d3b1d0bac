"""Banner evidence in the counting rules: the reader's scores over consecutive frames, table first.

A label here is what the worker publishes for a frame the reader read at a given mean
log-probability per letter (the shipped reader: accept -2.0, slope 6, near miss -2.7): its
probabilities are the reader's softmax (``services.inference.classifier.decide``), ``read`` names the
outcome from the near-miss level up, and the label is the outcome only from p 0.5 up.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from services.common.contracts.messages import Label
from services.state.machine import Machine
from services.state.rules import LabelInput, Rules, transition

RULES = Rules(min_confidence=0.9, required_consecutive=2, max_gap_ms=2000, cooldown_ms=10_000, required_none=3)
ACCEPT, SLOPE, NEAR = -2.0, 6.0, -2.7
NOW = 1_800_000_000_000
V, D = "victory", "defeat"


def reading(outcome: str, score: float, t: int, seq: int) -> Label:
    """The label of a frame the reader read as ``outcome`` at ``score`` per letter (the others far below)."""
    z = SLOPE * (score - ACCEPT) + math.log(9.0)
    p = 1.0 / (1.0 + math.exp(-z))
    probs = {"none": round(1.0 - p, 6), "victory": 0.0, "defeat": 0.0, "draw": 0.0}
    probs[outcome] = round(p, 6)
    label = outcome if p >= 0.5 else "none"
    return Label("default", seq, t, label, round(max(p, 1.0 - p), 6), probs, "m", "w", 1.0,  # type: ignore[arg-type]
                 read=outcome if score >= NEAR else "", score=score)


def plain(name: str, conf: float, t: int, seq: int) -> Label:
    """A label as older workers (or a gate deciding alone) wrote it: no ``read``, no ``score``."""
    return Label("default", seq, t, name, conf, {}, "m", "w", 1.0)  # type: ignore[arg-type]


def feed(steps: list[Any], rules: Rules = RULES, machine: Machine | None = None) -> tuple[Machine, list[int]]:
    """Run the steps; return the machine and the 1-based steps at which a detection happened."""
    m = machine or Machine()
    at: list[int] = []
    for i, step in enumerate(steps):
        t = i * 250
        label = reading(step[0], step[1], t, i + 1) if isinstance(step, tuple) else plain(step, 0.99, t, i + 1)
        if step == "none":
            label = plain("none", 0.99, t, i + 1)
        m, events = transition(m, LabelInput(label, now=NOW + i), rules)
        if any(e.type == "detected" for e in events):
            at.append(i + 1)
    return m, at


CASES: list[tuple[str, list[Any], list[int]]] = [
    # (name, frames: (outcome, score per letter) or a plain label name, steps that count)
    ("a banner read at -1.9, -2.1, -2.05 counts on its third frame", [(D, -1.9), (D, -2.1), (D, -2.05)], [3]),
    ("-1.9, -1.8, -2.1: two frames at min_confidence count at once", [(V, -1.9), (V, -1.8), (V, -2.1)], [2]),
    ("two frames at exactly accept count (today's guarantee)", [(D, -2.0), (D, -2.0)], [2]),
    ("one frame never counts, however clear", [(V, -0.1)], []),
    ("one clear flickering frame between gameplay never counts", ["none", (D, -0.2), "none", "none"], []),
    ("a clear frame and a near miss below p 0.5 do not add up", [(D, -0.5), (D, -2.5), (D, -0.5)], []),
    ("a sustained weak reading (-2.2) never counts", [(V, -2.2)] * 12, []),
    ("a sustained -2.15 never counts either", [(V, -2.15)] * 12, []),
    ("a sustained -2.1 banner counts on its third frame", [(D, -2.1)] * 3, [3]),
    ("two frames just below accept are not enough", [(D, -2.05), (D, -2.05)], []),
    ("mixed outcomes never add up", [(V, -1.9), (D, -1.9), (V, -2.05), (D, -2.05)], []),
    ("a near miss far below (-2.6) breaks the streak", [(D, -1.95), (D, -2.6), (D, -2.05), (D, -2.1)], []),
    ("a none between weak frames breaks the streak", [(D, -2.05), "none", (D, -2.05), (D, -2.1)], []),
    # issue 21.4: a look-alike (`VICTORIES`) read sure, weak, sure was counted by the window's sum
    ("a weak reading (p 0.55) between two sure ones does not bridge them",
     [(V, -1.9), (V, -2.33), (V, -1.9)], []),
    ("nor does a -2.15 between two sure ones", [(V, -1.5), (V, -2.15), (V, -1.5), (V, -2.15), (V, -1.5)], []),
    ("a sure frame after the weak one still pairs with the next sure one",
     [(V, -1.9), (V, -2.33), (V, -1.9), (V, -1.9)], [4]),
    ("-2.12 on every frame (just above the floor) counts on the third", [(D, -2.12)] * 3, [3]),
]


@pytest.mark.parametrize(("name", "steps", "counted_at"), CASES, ids=[c[0] for c in CASES])
def test_banner_evidence_table(name: str, steps: list[Any], counted_at: list[int]) -> None:
    _, at = feed(steps)
    assert at == counted_at, name


def test_labels_without_reader_evidence_keep_todays_rule() -> None:
    # unsure outcome labels (below min_confidence) never build up, however many
    m = Machine()
    for i in range(10):
        m, events = transition(m, LabelInput(plain(V, 0.85, i * 250, i + 1), now=NOW + i), RULES)
        assert not events or all(e.type != "detected" for e in events)
    # two confident ones count on the second
    m, _ = transition(m, LabelInput(plain(D, 0.95, 3000, 11), now=NOW), RULES)
    m, events = transition(m, LabelInput(plain(D, 0.91, 3250, 12), now=NOW), RULES)
    detected = [e for e in events if e.type == "detected"]
    assert [e.outcome for e in detected] == [D] and detected[0].confidence == 0.91


def test_the_gap_limit_applies_to_evidence_too() -> None:
    m = Machine()
    for i, t in enumerate((0, 250, 3000)):  # the third frame is 2.75 s after the second
        m, events = transition(m, LabelInput(reading(D, -2.1, t, i + 1), now=NOW + i), RULES)
        assert all(e.type != "detected" for e in events)
    assert m.frames_len == 1


def test_the_detection_carries_the_weakest_frames_probability() -> None:
    m = Machine()
    events = []
    for i, s in enumerate((-1.9, -2.1, -2.05)):
        m, evs = transition(m, LabelInput(reading(D, s, i * 250, i + 1), now=NOW + i), RULES)
        events += evs
    detected = [e for e in events if e.type == "detected"]
    assert len(detected) == 1 and detected[0].confidence is not None and 0.8 < detected[0].confidence < 0.9


def test_near_misses_are_ignored_in_cooldown_and_reset_the_none_run_after_it() -> None:
    m, at = feed([(D, -1.5), (D, -1.5)])
    assert at == [2] and m.phase == "cooldown"
    t0 = 20_000  # the cooldown (10 s) is over
    seq = 10
    for i in range(2):  # two clean frames, then a near miss: the run starts again
        m, _ = transition(m, LabelInput(plain("none", 0.99, t0 + i * 250, seq + i), now=NOW), RULES)
    assert m.phase == "waiting_for_none" and m.none_run == 2
    m, _ = transition(m, LabelInput(reading(D, -2.5, t0 + 500, seq + 2), now=NOW), RULES)
    assert m.none_run == 0
    # a frame the reader saw nothing on (below the near-miss level) is a clean frame
    m, _ = transition(m, LabelInput(reading(D, -4.0, t0 + 750, seq + 3), now=NOW), RULES)
    assert m.none_run == 1


def test_a_snapshot_round_trip_keeps_the_evidence_and_old_snapshots_still_count() -> None:
    m, at = feed([(D, -2.05), (D, -2.1)])
    assert at == [] and m.frames_len == 2 and len(m.frames_evidence) == 2
    again = Machine.from_json(m.to_json())
    assert again == m
    # a snapshot written before banner evidence, mid-streak after one confident frame
    old = replace(again, frames_outcome=V, frames_len=1, frames_last_at=250, frames_evidence=())
    legacy = Machine.from_json(old.to_json().replace(',"frames_evidence":[]', ""))
    assert legacy.frames_evidence == ()
    _, events = transition(legacy, LabelInput(plain(V, 0.95, 500, 3), now=NOW), RULES)
    assert [e.outcome for e in events if e.type == "detected"] == [V]


def test_evidence_is_off_at_min_confidence_1() -> None:
    rules = replace(RULES, min_confidence=1.0)
    _, at = feed([(D, -1.0)] * 6, rules)
    assert at == []
