"""Banner episodes over the grid (training.episode_eval): the plumbing, on a handful of episodes (no target)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from services.inference.classifier import Classifier
from training import episode_eval, synth
from training.config import MODEL_PATH
from training.synth.episodes import BANNER, LEAD, TAIL, render_grid_episode
from training.synth.grid import CELLS, COLOURS


def test_cells_are_spread_over_every_factor() -> None:
    assert episode_eval.pick_cells(10_000) == list(range(len(CELLS)))
    some = episode_eval.pick_cells(120)
    assert len(set(some)) == 120
    cells = [CELLS[i] for i in some]
    assert Counter(c[0] for c in cells) == {"victory": 40, "defeat": 40, "draw": 40}
    assert Counter(c[4] for c in cells) == {"en": 60, "ja": 60}
    assert {(c[0], c[1]) for c in cells} == {(o, c) for o in episode_eval.OUTCOMES for c in COLOURS}
    assert len({c[2] for c in cells}) == 3 and len({c[3] for c in cells}) == 4
    assert {CELLS[i][0] for i in episode_eval.pick_cells(3)} == set(episode_eval.OUTCOMES)


def test_wilson_interval() -> None:
    assert all(math.isnan(v) for v in episode_eval.wilson(0, 0))
    lo, hi = episode_eval.wilson(200, 200)
    assert hi == 1.0 and lo == pytest.approx(0.9812, abs=1e-4)
    lo, hi = episode_eval.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)


def test_an_episode_is_seeded_and_the_banner_arrives_at_its_onset() -> None:
    frames, info = render_grid_episode(4242, CELLS.index(("draw", "red", "regular", "end_screen", "en")))
    assert len(frames) == LEAD + BANNER + TAIL and info["onset"] == LEAD
    assert {(w, h) for _d, w, h in frames} == {(info["width"], info["height"])}
    again, _ = render_grid_episode(4242, CELLS.index(("draw", "red", "regular", "end_screen", "en")))
    assert [d for d, _w, _h in again] == [d for d, _w, _h in frames]
    other, _ = render_grid_episode(4242, CELLS.index(("draw", "red", "regular", "end_screen", "en")), repeat=1)
    assert other[LEAD][0] != frames[LEAD][0]


def test_a_handful_of_episodes_through_the_detector_and_the_rules(tmp_path: Path) -> None:
    rep = episode_eval.run(MODEL_PATH, cells=3, cache_dir=tmp_path, workers=1, verbose=False)
    assert rep["episodes"] == 3 and [rep["overall"][o]["n"] for o in episode_eval.OUTCOMES] == [1, 1, 1]
    assert rep["overall"]["all"]["right"] + len(rep["misses"]) == 3
    assert rep["per_frame"]["banner_frames"] == 3 * BANNER
    assert rep["per_frame"]["gameplay_frames"] == 3 * LEAD
    assert rep["false_counts_before_onset"] == 0
    ftc = rep["frames_to_count"]
    assert ftc["n"] == rep["overall"]["all"]["right"] and (ftc["n"] == 0 or 1 <= ftc["min"] <= ftc["max"] < BANNER)
    assert all(m["cause"] and len(m["frames"]) == LEAD + BANNER + TAIL for m in rep["misses"])
    cached = sorted(tmp_path.glob("episodes-*.npz"))
    assert len(cached) == 1
    # the second time the frames come from the cache, byte for byte
    eps = list(episode_eval.episodes(episode_eval.EPISODE_SEED, episode_eval.pick_cells(3), 1, synth.EVAL, tmp_path,
                                     workers=1))
    assert sorted(tmp_path.glob("episodes-*.npz")) == cached
    fresh, _ = render_grid_episode(episode_eval.EPISODE_SEED, eps[0].info["cell"])
    assert [f.data for f in eps[0].frames] == [d for d, _w, _h in fresh]
    md = "\n".join(episode_eval.episode_tables(rep, episode_eval.command(3, 1)))
    assert "--cells 3" in md and "| **all** |" in md
    # --only: one of the chosen cells, from the same cache (nothing rendered), counted as in the full run
    one = eps[1].info["cell"]
    alone = episode_eval.run(MODEL_PATH, cells=3, cache_dir=tmp_path, workers=1, verbose=False, only={one})
    assert sorted(tmp_path.glob("episodes-*.npz")) == cached
    assert alone["episodes"] == 1 and alone["only"] == [one] and alone["cells"] == 3
    outcome = eps[1].info["label"]
    assert alone["overall"][outcome]["n"] == 1
    assert alone["overall"][outcome]["right"] == rep["overall"][outcome]["right"]
    assert episode_eval.command(3, 1, {one, 0}).endswith(f"--cells 3 --only {min(0, one)},{max(0, one)}")


def test_only_takes_cells_of_the_grid(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        episode_eval.main(["--only", "3,x"])
    with pytest.raises(SystemExit):
        episode_eval.main(["--only", str(len(CELLS))])
    assert "numbered 0" in capsys.readouterr().err
    outside = next(c for c in range(len(CELLS)) if c not in episode_eval.pick_cells(3))
    with pytest.raises(SystemExit):
        episode_eval.main(["--cells", "3", "--only", str(outside)])
    assert "outside the 3 chosen" in capsys.readouterr().err


def test_a_miss_is_put_down_to_the_stage_that_dropped_it() -> None:
    clf = Classifier(MODEL_PATH)
    info = {"label": "defeat", "onset": 1, "seed": 1, "cell": 0, "repeat": 0}
    unread = [{"k": k - 1, "gate": 0.1, "label": "none", "conf": 1.0} for k in range(1 + BANNER)]
    r = episode_eval.Result(info, [], unread, [0.0] * len(unread))
    assert episode_eval.diagnose(r, clf)[0].startswith("never read")
    weak = [dict(f, why="gate", scores={"victory": -9.0, "defeat": -4.0, "draw": -8.0}, read="") for f in unread]
    assert episode_eval.diagnose(episode_eval.Result(info, [], weak, []), clf)[0].startswith("reader too weak")
    near = [dict(f, scores={"victory": -9.0, "defeat": -2.5, "draw": -8.0}) for f in weak]
    assert episode_eval.diagnose(episode_eval.Result(info, [], near, []), clf)[0].startswith("near misses only")
    wrong = episode_eval.Result(info, [("draw", 4)], near, [])
    assert not wrong.right and wrong.wrong == ["draw"]
    assert episode_eval.diagnose(wrong, clf)[0] == "wrong outcome draw"
