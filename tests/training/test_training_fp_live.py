"""The long false-positive run as a live channel (``training.fp_run --live``): the real shipped detector, its reader's
schedule and reuse, its phase from the rules, on a tiny pool holding one settled banner among ``none`` scenes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from services.common.config.sections import StateSettings
from services.inference.classifier import Classifier, Prediction
from services.state.rules import Rules
from training import fp_run, synth
from training.config import MODEL_PATH
from training.frames import FrameTuple, Gate, Rendered, render
from training.synth.episodes import BANNER, LEAD, render_grid_episode
from training.synth.grid import CELLS

BANNER_CELL = ("victory", "blue", "regular", "end_screen", "en")


@pytest.fixture(scope="module")
def pool() -> list[Rendered]:
    """Scene 0: the last frame of a victory banner episode (the banner settled); then three ``none`` scenes."""
    synth.ensure_fonts(synth.EVAL)
    frames, _info = render_grid_episode(4242, CELLS.index(BANNER_CELL))
    data, w, h = frames[LEAD + BANNER - 1]
    none = render(7, 3, synth.EVAL, label="none", size=fp_run.FP_SIZE, workers=1)
    return [Rendered(data, w, h, {"kind": "banner"}), *none]


class Seen:
    """The real detector, keeping every frame it was given."""

    def __init__(self) -> None:
        self.clf = Classifier(MODEL_PATH)
        self.frames: list[FrameTuple] = []

    def classify(self, frames: Sequence[FrameTuple]) -> list[Prediction]:
        self.frames += frames
        return self.clf.classify(frames)


def test_live_counts_every_banner_hold_the_rules_allow_and_lists_its_frames(pool: list[Rendered]) -> None:
    hours = 0.1  # 6 min of timeline: more than the 180 s cooldown, so the banner must be counted twice or more
    res = fp_run.fp_run_live(pool, hours, Classifier(MODEL_PATH), progress=False)
    segments = fp_run.plan(len(pool), hours, 2024)
    assert res.live and res.frames == sum(s.frames for s in segments) == round(hours * 3600 * fp_run.FPS)
    cooldown = Rules.from_settings(StateSettings.model_validate({})).cooldown_ms / 1000
    counts = iter(res.false_counts)
    ready_at = 0.0  # when the rules may count again (the last count + the cooldown)
    holds = 0
    for s in segments:  # every hold of the banner that starts with the rules ready is counted within it, once
        start_s, end_s = s.start / fp_run.FPS, (s.start + s.frames) / fp_run.FPS
        if s.scene != 0 or end_s <= ready_at:
            continue
        if start_s < ready_at:  # the cooldown ends within this hold: it may be counted or not
            if res.false_counts and any(start_s <= f["at_s"] < end_s for f in res.false_counts):
                f = next(counts)
                ready_at = f["at_s"] + cooldown
            continue
        f = next(counts)
        assert start_s <= f["at_s"] < end_s and f["frame_in_scene"] == round(f["at_s"] * fp_run.FPS) - s.start
        assert f["scene"] == 0 and f["kind"] == "banner" and f["outcome"] == "victory"
        recent = f["recent"]
        assert 1 < len(recent) <= fp_run.RECENT and recent[-1]["k"] == f["frame_in_scene"]
        assert recent[-1]["label"] == "victory" and all("why" in r and "reused" in r for r in recent[-2:])
        ready_at = f["at_s"] + cooldown
        holds += 1
    assert next(counts, None) is None  # nothing else was counted
    assert holds >= 2
    # the schedule at work: readings reused (fewer fresh reads than frames the gate passed) and none in cooldown
    assert 0 < res.fresh_reads == res.reader["full_reads"] < res.reader["candidates"]
    assert res.reader["reused"] > 0 and res.reader["cooldown_skipped"] + res.reader["cooldown_moving"] > 0
    assert res.cpu_ms > 0 and res.by_kind["banner"]["false_counts"] == len(res.false_counts)
    assert sum(k["frames"] for k in res.by_kind.values()) == res.frames


def test_live_and_the_card_s_run_see_the_same_frames_and_count_the_same_banner(pool: list[Rendered]) -> None:
    hours = 0.04  # within the first cooldown: one count
    seen = Seen()
    card = fp_run.fp_run(pool, hours, lambda: (seen, Gate(MODEL_PATH)), workers=1, progress=False)
    live = fp_run.fp_run_live(pool, hours, Classifier(MODEL_PATH), progress=False)
    segments = fp_run.plan(len(pool), hours, 2024)
    assert seen.frames == [f for _seg, f in fp_run.timeline(pool, segments)]
    assert not card.live and card.fresh_reads == 0 and card.reader == {}
    assert [(f["scene"], f["at_s"], f["outcome"]) for f in card.false_counts] == \
        [(f["scene"], f["at_s"], f["outcome"]) for f in live.false_counts] != []
    assert live.gate_rate == pytest.approx(card.gate_rate, abs=0.01)


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--live", "--hours", "0.01", "--pool", "4", "--pool-seed", "7", "--cache-dir", str(tmp_path)]
    rc = fp_run.main([*argv, "--workers", "2"])
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert rc == (1 if out["false_counts"] else 0)
    assert "--workers 2 ignored" in cap.err
    assert out["live"] is True and out["frames"] == 144 and out["pool_seed"] == 7
    assert out["cpu_ms_per_frame"] > 0 and out["fresh_reads"] == out["reader"]["full_reads"] <= 144
    assert {"per_hour", "outcome_frames", "confident_outcome_frames", "gate_rate", "run_s", "total_s"} <= set(out)
