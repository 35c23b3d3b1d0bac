"""Every card figure reproducible: the same seed renders the same bytes in one process, in a pool of workers and
in another interpreter with another hash seed; two cards compare without their timing figures (no torch)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training import synth
from training.card import NOTES_HEADING, diff, load_notes, mask_timing, merge_notes
from training.config import PROJECT_ROOT
from training.frames import render
from training.synth.episodes import render_grid_episode
from training.synth.grid import CELLS

# one frame of every kind the evaluation renders: held-out samples, a `none` scene at the FP pool's size, a grid
# banner, an episode; printed as sha256 digests
_DIGESTS = """
import hashlib, json, sys
from training import synth
from training.synth.episodes import render_grid_episode
from training.synth.grid import render_grid_sample
h = lambda b: hashlib.sha256(b).hexdigest()
out = [h(synth.render_sample(1001, i, synth.EVAL)[0]) for i in range(4)]
out.append(h(synth.render_sample(2001, 5, synth.EVAL, label="none", size=(640, 360))[0]))
out.append(h(render_grid_sample(3001, 7, synth.EVAL, 2)[0]))
out.append(h(b"".join(d for d, _w, _h in render_grid_episode(4001, 11, 0, synth.EVAL)[0][8:12])))
print(json.dumps(out))
"""


def _digests_here() -> list[str]:
    from training.synth.grid import render_grid_sample

    def h(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()

    out = [h(synth.render_sample(1001, i, synth.EVAL)[0]) for i in range(4)]
    out.append(h(synth.render_sample(2001, 5, synth.EVAL, label="none", size=(640, 360))[0]))
    out.append(h(render_grid_sample(3001, 7, synth.EVAL, 2)[0]))
    out.append(h(b"".join(d for d, _w, _h in render_grid_episode(4001, 11, 0, synth.EVAL)[0][8:12])))
    return out


def test_a_pool_of_workers_renders_the_same_bytes_as_one_process() -> None:
    one = render(1001, 6, synth.EVAL, workers=1)
    pool = render(1001, 6, synth.EVAL, workers=2)
    assert [f.data for f in pool] == [f.data for f in one]
    assert [f.info for f in pool] == [f.info for f in one]
    grid_one = render(3001, 4, synth.EVAL, workers=1, grid=1)
    grid_pool = render(3001, 4, synth.EVAL, workers=2, grid=1)
    assert [f.data for f in grid_pool] == [f.data for f in grid_one]


@pytest.mark.parametrize("hash_seed", ["1", "4242"])
def test_another_interpreter_with_another_hash_seed_renders_the_same_bytes(hash_seed: str) -> None:
    """Nothing the pixels depend on may come from set/dict order under a random ``PYTHONHASHSEED`` or from the
    process (its id, its time, what it rendered before)."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _DIGESTS], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == _digests_here()


CARD = """# Model card

- **reproduce with**: `make eval` (812 s wall on the shared 2-core machine, load 3.1, 2.0, 1.5 at the end)

## (a) Held-out

Detector accuracy **0.8350**; gate p50 0.338 ms, p95 9.823 ms.

## (b) Long false-positive run

**1 false counts in 10 h**; wall time 717 s (201 frames/s including the jitter)

## Cost

timing target (gate latency p50 ≤ 0.5 ms): met
"""


def test_two_cards_differ_only_where_a_figure_does() -> None:
    rerun = (CARD.replace("812 s", "1377 s").replace("3.1, 2.0, 1.5", "11.4, 9.0, 6.2")
             .replace("0.338 ms", "0.512 ms").replace("717 s (201", "902 s (160").replace(": met", ": missed"))
    assert diff(CARD, rerun) == []
    assert "<t>" in mask_timing(CARD) and "0.8350" in mask_timing(CARD) and "10 h" in mask_timing(CARD)
    changed = diff(CARD, CARD.replace("0.8350", "0.8330"))
    assert [s for s in changed if s[:1] in "+-" and s[:3] not in ("---", "+++")] == [
        "-Detector accuracy **0.8350**; gate p50 <t>, p95 <t>.",
        "+Detector accuracy **0.8330**; gate p50 <t>, p95 <t>.",
    ]
    assert diff(CARD, CARD.replace("**1 false counts", "**0 false counts")) != []


def test_hand_written_notes_go_under_their_section(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\npreamble, not copied\n\n## (b) the 10-hour run\n\nscene 1977 reads VICTORDE.\n\n"
                     "## (a)\n\nhistory: 0.833 on a fresh clone.\n", encoding="utf-8")
    parsed = load_notes(notes)
    assert parsed == {"(b)": ["scene 1977 reads VICTORDE."], "(a)": ["history: 0.833 on a fresh clone."]}
    merged = merge_notes(CARD.splitlines(), parsed)
    text = "\n".join(merged)
    assert "preamble" not in text
    a, b, cost = (text.index(h) for h in ("## (a)", "## (b)", "## Cost"))
    assert a < text.index("history: 0.833") < b < text.index("scene 1977") < cost
    assert text.count(NOTES_HEADING) == 2
    assert merge_notes(CARD.splitlines(), {}) == CARD.splitlines()
    with pytest.raises(ValueError, match=r"\(a9\)"):
        merge_notes(CARD.splitlines(), {"(a9)": ["typo"]})
    assert load_notes(tmp_path / "absent.md") == {}


def test_the_shipped_notes_name_sections_the_card_has() -> None:
    notes = load_notes(PROJECT_ROOT / "models" / "MODEL_CARD.notes.md")
    card = (PROJECT_ROOT / "models" / "MODEL_CARD.md").read_text(encoding="utf-8").splitlines()
    assert notes and merge_notes(card, notes)  # raises on a section the card does not have


def test_episodes_render_the_same_bytes_twice_in_one_process() -> None:
    cell = CELLS.index(("victory", "red", "thin", "gameplay", "ja"))
    a, _ = render_grid_episode(4001, cell, 0, synth.EVAL)
    synth.render_sample(1001, 3, synth.EVAL)  # whatever ran in between (font and photo caches) changes nothing
    b, _ = render_grid_episode(4001, cell, 0, synth.EVAL)
    assert [d for d, _w, _h in a] == [d for d, _w, _h in b]


def test_the_grid_cache_is_keyed_on_the_cells_it_draws() -> None:
    from training.frames import _key, grid_cells, grid_step

    assert grid_cells(2 * len(CELLS), 2) == list(range(len(CELLS))) and grid_step(2 * len(CELLS), 2) == 1
    quick = grid_cells(72, 1)
    assert len(quick) == 72 and {CELLS[i][0] for i in quick} == {"victory", "defeat", "draw"}
    assert _key(3001, 72, synth.EVAL, None, None, grid=1) != _key(3001, 72, synth.EVAL, None, None, grid=2)


def test_the_training_cache_is_keyed_on_the_preprocessing_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training arrays are preprocess_bytes' output: other preprocessing code must not reuse them."""
    from training import dataset

    assert len(dataset.preprocess_digest()) == 16
    before = dataset.cache_key(1, 10, synth.TRAIN)
    monkeypatch.setattr(dataset, "preprocess_digest", lambda: "other-code")
    assert dataset.cache_key(1, 10, synth.TRAIN) != before


def test_two_reports_compare_without_their_timing_keys() -> None:
    from training.card import json_diff, without_timing

    rep = {"model": "/tmp/clone/models/victory_classifier.onnx", "eval_seconds": 812.0, "load": "3.1, 2.0, 1.5",
           "gameplay": {"frames": 22, "candidate_rate": 0.18, "cpu_ms_mean": 5.1, "cpu_ms_p99": 25.0},
           "episodes": {"misses": [{"cell": "victory/red", "frames": [{"k": 0, "gate": 0.5, "cpu_ms": 3.2}]}],
                        "render_cpu_s": 1.0, "seconds": 99.0, "frames_to_count": {"p95": 3.0}},
           "fp": {"wall_s": 717.0, "false_counts": [{"at_s": 12.5, "scene": 1977}], "per_hour": 0.1}}
    kept = without_timing(rep)
    assert kept == {"gameplay": {"frames": 22, "candidate_rate": 0.18},
                    "episodes": {"misses": [{"cell": "victory/red", "frames": [{"k": 0, "gate": 0.5}]}],
                                 "frames_to_count": {"p95": 3.0}},
                    "fp": {"false_counts": [{"at_s": 12.5, "scene": 1977}], "per_hour": 0.1}}
    other = json.loads(json.dumps(rep))
    other["gameplay"]["cpu_ms_mean"], other["fp"]["wall_s"] = 9.9, 900.0
    assert json_diff(without_timing(rep), without_timing(other)) == []
    other["fp"]["false_counts"][0]["scene"] = 138
    assert json_diff(without_timing(rep), without_timing(other)) == ["/fp/false_counts[0]/scene: 1977 != 138"]


def test_the_false_positive_run_is_the_same_in_one_process_and_two_workers() -> None:
    """The shipped detector over held-out `none` scenes: the worker count (and so the batches) changes nothing."""
    from services.inference.classifier import Classifier
    from training import fp_run
    from training.config import MODEL_PATH
    from training.frames import Gate

    pool = render(2001, 6, synth.EVAL, label="none", size=(640, 360), workers=1)

    def factory() -> tuple[Classifier, Gate]:
        return Classifier(MODEL_PATH), Gate(MODEL_PATH)

    one = fp_run.fp_run(pool, 0.01, factory, workers=1, progress=False)
    two = fp_run.fp_run(pool, 0.01, factory, workers=2, progress=False)
    assert one.frames == two.frames == 144
    for field in ("false_counts", "outcome_frames", "confident_outcome_frames", "gate_rate", "by_kind"):
        assert getattr(one, field) == getattr(two, field), field


def test_the_training_arrays_digest_changes_with_one_pixel_or_label() -> None:
    """What the model's JSON records of the data the fit saw (``training.data.arrays_sha256``)."""
    import numpy as np

    from training import dataset

    rng = np.random.default_rng(0)
    a = dataset.Arrays(rng.integers(0, 256, (4, 3, 48, 96), dtype=np.uint8), np.arange(4, dtype=np.int64), ["x"] * 4)
    same = dataset.Arrays(a.x.copy(), a.y.copy(), ["y"] * 4)
    assert dataset.digest(a) == dataset.digest(same) and len(dataset.digest(a)) == 16
    same.x[2, 1, 30, 40] ^= 1
    assert dataset.digest(same) != dataset.digest(a)
    assert dataset.digest(dataset.Arrays(a.x, a.y[::-1].copy(), a.kinds)) != dataset.digest(a)
