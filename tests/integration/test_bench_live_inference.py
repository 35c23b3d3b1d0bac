"""`python -m tools.bench.live_inference`: the paced demo loop through the real worker and redis-server."""

from __future__ import annotations

import json

import pytest

from tools.bench.live_inference import main


def test_a_run_times_every_stage_and_compares_the_labels(capsys: pytest.CaptureFixture[str]) -> None:
    # two runs of this checkout on the clip's first 16 frames, paced fast: every frame labelled, each stage timed
    assert main(["--frames", "16", "--fps", "16", ".", "."]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    runs = [r for r in lines if "thread_cpu_ms_per_frame" in r]
    assert len(runs) == 2
    for run in runs:
        assert run["labels"] == 16 and run["thread_cpu_ms_per_frame"] > 0
        stages = run["stage_cpu_ms_per_frame"]
        assert set(stages) == {"decode", "pre", "gate", "banner", "commit", "handle_rest", "poll", "house"}
        assert stages["decode"] > 0 and stages["gate"] > 0 and stages["commit"] > 0
        assert run["gameplay_frames"]["frames"] == 16 and run["banner_frames"]["frames"] == 0
        assert run["reader"]["frames"] == 16
    # the same code on the same frames: the same labels
    assert [r for r in lines if "labels_differing_from_the_first_run" in r] == [
        {"tree": runs[1]["tree"], "labels_differing_from_the_first_run": []}]
