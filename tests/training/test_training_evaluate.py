"""The evaluation: per-language held-out tables and the false-positive run through the real rules (no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.inference.classifier import Classifier, Prediction
from services.state.rules import Rules
from training import evaluate, fp_run, heldout, synth
from training.card import load_notes
from training.config import MODEL_PATH
from training.frames import FrameTuple, Gate, Rendered, detect, is_gate_only, render


class Fixed:
    """A fake detector that gives every frame the same answer."""

    def __init__(self, label: str, confidence: float = 0.97) -> None:
        self.label, self.confidence = label, confidence
        self.seen = 0

    def classify(self, frames: Sequence[FrameTuple]) -> list[Prediction]:
        self.seen += len(frames)
        probs = {k: (self.confidence if k == self.label else (1 - self.confidence) / 3)
                 for k in ("none", "victory", "defeat", "draw")}
        return [Prediction(self.label, self.confidence, probs) for _ in frames]


class Oracle:
    """A fake detector that knows the answer (by the frame's bytes)."""

    def __init__(self, frames: Sequence[Rendered]) -> None:
        self.truth = {f.data: f.info["label"] for f in frames}

    def classify(self, frames: Sequence[FrameTuple]) -> list[Prediction]:
        return [Prediction(self.truth[d], 0.99, {self.truth[d]: 0.99}) for d, _w, _h in frames]


@pytest.fixture(scope="module")
def held() -> list[Rendered]:
    # two of each outcome in both languages, plus none frames of the held-out split
    frames = [Rendered(*r[:3], r[3]) for r in (synth.render_sample(4242, i, synth.EVAL) for i in range(30))]
    return frames


@pytest.fixture(scope="module")
def pool() -> list[Rendered]:
    return render(77, 12, synth.EVAL, label="none", size=(640, 360), workers=1)


def test_per_language_table_scores_a_perfect_and_a_blind_detector(held: list[Rendered]) -> None:
    gate = np.asarray([0.0 if f.info["label"] == "none" else 1.0 for f in held], np.float32)
    right = heldout.report(held, gate, detect(Oracle(held), [f.frame for f in held]))
    langs = {f.info["lang"] for f in held if f.info["label"] != "none"}
    assert langs == {"en", "ja"}, "the fixture must hold both languages"
    assert set(right["per_class"].values()) == {1.0}
    for lab in heldout.OUTCOMES:
        assert right["outcomes"][f"{lab}/all"]["gate_0.2"] == 1.0
        assert right["outcomes"][f"{lab}/all"]["wrong_outcome"] == 0
    assert right["none"]["gate_0.1"] == 0.0 and right["none"]["detector_outcome"] == 0

    blind = heldout.report(held, np.zeros(len(held), np.float32), detect(Fixed("none"), [f.frame for f in held]))
    strict = [k for k in heldout.OUTCOMES
              if any(f.info["label"] == k and f.info["kind"] not in heldout.MAY_BE_NONE for f in held)]
    assert all(blind["per_class"][k] < 1.0 for k in strict)
    assert blind["outcomes"]["defeat/all"]["gate_0.1"] == 0.0
    wrong = heldout.report(held, gate, detect(Fixed("draw"), [f.frame for f in held]))
    assert wrong["outcomes"]["victory/all"]["wrong_outcome"] == wrong["outcomes"]["victory/all"]["n"]
    assert wrong["none"]["detector_confident_outcome"] == wrong["none"]["n"]


def test_the_shipped_gate_scores_held_out_frames(held: list[Rendered]) -> None:
    frames = [f.frame for f in held]
    clf = Classifier(MODEL_PATH)
    report = heldout.report(held, Gate(MODEL_PATH).scores(frames), detect(clf, frames))
    for row in report["outcomes"].values():
        assert 0.0 <= row["gate_0.1"] <= 1.0 and row["gate_0.3"] <= row["gate_0.1"]
    if is_gate_only(clf):  # the gate's own probabilities: 1 - p(none) from classify equals the gate's
        direct = Gate(MODEL_PATH).scores(frames[:4])
        via = np.asarray([1 - p.probs["none"] for p in clf.classify(frames[:4])])
        assert np.allclose(direct, via, atol=1e-4)


def test_timeline_holds_scenes_for_two_to_eight_seconds() -> None:
    segs = fp_run.plan(pool_size=50, hours=0.2, seed=1)
    assert sum(s.frames for s in segs) == 0.2 * 3600 * 4
    assert all(8 <= s.frames <= 32 for s in segs[:-1])
    assert [s.start for s in segs] == list(np.cumsum([0] + [s.frames for s in segs[:-1]]))
    assert len({s.scene for s in segs}) > 20


def test_a_detector_that_always_says_defeat_is_counted_through_the_real_rules(pool: list[Rendered]) -> None:
    det = Fixed("defeat", 0.95)
    res = fp_run.fp_run(pool, 0.1, lambda: (det, None), workers=1, progress=False)
    assert det.seen == res.frames == 1440
    # counted on the second frame, then the 180 s cooldown, then it never sees 50 `none` frames to re-arm
    assert len(res.false_counts) == 1 and res.false_counts[0]["at_s"] == 0.25
    assert res.per_hour == pytest.approx(10.0)
    assert res.outcome_frames == res.confident_outcome_frames == 1440
    assert res.gate_rate["0.3"] == 1.0
    # below min_confidence nothing is counted
    low = fp_run.fp_run(pool, 0.02, lambda: (Fixed("defeat", 0.6), None), workers=1, progress=False)
    assert low.false_counts == [] and low.confident_outcome_frames == 0


class NearMiss:
    """A fake detector whose reader keeps *almost* seeing DEFEAT: an unsure ``defeat`` (below min_confidence)
    with the reader's ``read`` and ``score``, as the classifier publishes it."""

    def __init__(self, p: float) -> None:
        self.p = p

    def classify(self, frames: Sequence[FrameTuple]) -> list[Prediction]:
        probs = {"none": 1.0 - self.p, "victory": 0.0, "defeat": self.p, "draw": 0.0}
        stages = {"reader": {"read": "defeat", "score": -1.25}}
        return [Prediction("defeat", self.p, probs, stages) for _ in frames]


def _chunk(frames: Sequence[tuple[str, float, str]]) -> fp_run.Chunk:
    """A chunk of ``(label, p(label), read)`` frames; p(none) takes the rest."""
    n = len(frames)
    probs = np.full((n, len(fp_run.LABELS)), np.nan)
    for i, (label, p, _read) in enumerate(frames):
        probs[i, :4] = 0.0
        probs[i, 0] = 1.0 - p
        probs[i, fp_run.LABELS.index(label)] = p
    return fp_run.Chunk(
        labels=np.asarray([fp_run.LABELS.index(f[0]) for f in frames], np.uint8),
        confidence=np.asarray([f[1] for f in frames], np.float32),
        gate=np.full(n, np.nan, np.float32), probs=probs,
        read=np.asarray([fp_run.READS.index(f[2]) for f in frames], np.uint8),
        score=np.asarray([-1.0 if f[2] else np.nan for f in frames]),
    )


def test_count_feeds_the_readers_evidence_to_the_rules(pool: list[Rendered]) -> None:
    rules = Rules()  # min_confidence 0.9: a frame at 0.85 is never counted on its own
    segs = [fp_run.Segment(scene=0, start=0, frames=6, seed=1)]
    # three unsure frames in a row on which the reader read DEFEAT: ln(0.85/0.15) each adds up to a count
    near = fp_run.count(pool, _chunk([("none", 0.99, "")] + [("defeat", 0.85, "defeat")] * 5), segs, rules)
    assert [(f["outcome"], f["at_s"]) for f in near] == [("defeat", 0.75)]
    # the same frames without the reader's word: no evidence, no count (the old fp_run's view)
    assert fp_run.count(pool, _chunk([("none", 0.99, "")] + [("defeat", 0.85, "")] * 5), segs, rules) == []
    # a reading that keeps changing its mind does not add up
    flip = [("defeat", 0.85, "defeat"), ("victory", 0.85, "victory")] * 3
    assert fp_run.count(pool, _chunk(flip), segs, rules) == []
    # a weaker near miss (ln 4 a frame) never reaches two confident frames' worth in the three-frame window
    assert fp_run.count(pool, _chunk([("defeat", 0.8, "defeat")] * 6), segs, rules) == []
    one = _chunk([("defeat", 0.85, "defeat")]).label(0, "fp", 5)
    assert (one.read, one.score, one.probs["defeat"]) == ("defeat", -1.0, 0.85)
    assert "error" not in one.probs  # absent probabilities stay absent


def test_near_misses_flow_from_the_detector_through_the_worker_processes(pool: list[Rendered]) -> None:
    """The reader's read and score cross the process pool into the rules: an unsure DEFEAT run counts."""
    res = fp_run.fp_run(pool, 0.02, lambda: (NearMiss(0.85), None), workers=2, progress=False)
    assert res.frames == 288
    # counted on the third frame (the evidence of two confident frames), then the cooldown holds
    assert [(f["outcome"], f["at_s"]) for f in res.false_counts] == [("defeat", 0.5)]
    assert res.confident_outcome_frames == 0 and res.outcome_frames == 288
    assert fp_run.fp_run(pool, 0.02, lambda: (NearMiss(0.8), None), workers=2, progress=False).false_counts == []


def test_a_small_false_positive_run_of_the_shipped_detector(pool: list[Rendered]) -> None:
    """0.02 h of held-out `none` scenes through the shipped detector and the rules: no false count."""
    res = fp_run.fp_run(pool, 0.02, lambda: (Classifier(MODEL_PATH), Gate(MODEL_PATH)), workers=1, progress=False)
    assert res.frames == 288 and res.pool == 12
    assert res.false_counts == [], res.false_counts
    assert set(res.gate_rate) == {"0.1", "0.2", "0.3"}
    assert sum(r["frames"] for r in res.by_kind.values()) == 288


@pytest.mark.slow
def test_quick_evaluation_writes_every_section_of_the_card(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    rc = evaluate.main(["--eval-count", "40", "--hours", "0.01", "--pool", "12", "--workers", "1",
                        "--grid", "1", "--grid-cells", "6", "--episode-cells", "3",
                        "--card", str(card), "--cache-dir", str(tmp_path / "cache"),
                        "--samples", str(tmp_path / "no-samples")])
    assert rc == 0
    text = card.read_text()
    for heading in ("## (a) Held-out synthetic frames", "## (b) Long false-positive run", "## (c) Real footage",
                    "## Never tested on", "victory/en", "defeat/ja", "candidate rate",
                    "## (a2) Every outcome in every colour", "colour red", "scene end_screen", "ms of CPU per frame",
                    "## (a3) Banner episodes through the counting rules", "time to count",
                    "## (b2) The same run as a live channel", "frames read afresh"):
        assert heading in text
    assert "--eval-count 40 --hours 0.01 --pool 12 --grid 1 --grid-cells 6 --episode-cells 3" in text
    assert "**reproduce with**: `.venv/bin/python -m training.evaluate --eval-count 40" in text
    assert "### Recordings through `owc scan`" in text
    assert text.count("### Notes (written by hand") == len(load_notes(MODEL_PATH.parent / evaluate.NOTES_NAME))


def test_make_eval_defaults_are_the_cards_settings() -> None:
    """`make eval` (no flags) evaluates with the settings the card names, every section at full size."""
    assert evaluate.eval_command(evaluate.FULL) == (
        ".venv/bin/python -m training.evaluate --eval-count 3000 --hours 10 --pool 3000 --grid 2 --grid-cells 720 "
        "--episode-cells 720")
    assert evaluate.QUICK_CARD.name == "MODEL_CARD.quick.md" and evaluate.QUICK_CARD.parent.name == "artifacts"
