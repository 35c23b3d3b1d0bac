"""`owc bench resources` and `owc bench e2e --with-actions`, short runs: the structure and verdicts, not timing.

Needs the shipped model (the benches run the real stack); `e2e` uses Chromium when it is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.common.config.settings import DEFAULT_MODEL

pytestmark = [pytest.mark.slow]

if not DEFAULT_MODEL.exists():
    pytest.skip("the shipped model models/victory_classifier.onnx is missing", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]


def _bench(*argv: str, timeout: float) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-m", "services", "bench", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def test_bench_resources_counts_every_process_of_both_modes_in_one_run() -> None:
    rc, out, err = _bench("resources", "--seconds", "4", "--warmup", "1", "--no-obs-seconds", "2", timeout=300)
    assert rc == 0, err
    one, many = out["modes"]["one_process"], out["modes"]["processes"]
    # every process the user runs: the keeper / supervisor too
    assert set(one["processes"]) == {"keeper", "redis", "stack"}, one["processes"]
    assert {"supervisor", "redis", "state", "actions", "gateway", "inference", "capture"} <= set(many["processes"])
    for mode in (one, many):
        for figures in mode["processes"].values():
            assert set(figures) == {"cpu_percent_of_one_core", "rss_mb", "pss_mb", "wakeups_per_s"}
            assert figures["rss_mb"] >= figures["pss_mb"] > 0 and figures["wakeups_per_s"] >= 0
        # the total is the whole tree at its peak: no more than the sum of each process's peak
        assert 0 < mode["total"]["pss_mb"] <= mode["total"]["rss_mb"] <= sum(
            f["rss_mb"] for f in mode["processes"].values()) + 0.2
        # every second of the window is either quiet or around a result
        assert mode["idle_seconds"] + mode["busy_seconds"] == pytest.approx(mode["seconds"], abs=1.0)
        assert isinstance(mode["results_in_window"], int) and isinstance(mode["webhook_requests_in_window"], int)
        # the stack commands its Redis on a live feed (the bench's own commands left out)
        assert mode["redis_commands_per_s"] > 0
        # by command too: every frame is read by a consumer group (inference, state), the bench's own left out
        by_command = mode["redis_commands_by_command"]
        assert by_command["xreadgroup"] > 0 and "info" not in by_command, by_command
        assert sum(by_command.values()) == pytest.approx(mode["redis_commands_per_s"], abs=0.5)
    assert many["actions_process"]["idle_seconds"] >= 0
    # one process: the stack's CPU by service, from its threads' names (every service runs a thread)
    threads = one["stack_threads_cpu_percent_of_one_core"]
    assert {"capture", "inference", "state", "gateway", "actions", "main"} <= set(threads), threads
    assert sum(threads.values()) == pytest.approx(one["processes"]["stack"]["cpu_percent_of_one_core"], abs=1.0)
    assert "stack_threads_cpu_percent_of_one_core" not in many
    assert set(out["one_process_no_obs"]["processes"]) == {"keeper", "redis", "stack"}
    assert out["one_process_vs_processes"]["rss_mb"] == pytest.approx(
        one["total"]["rss_mb"] / many["total"]["rss_mb"], abs=0.01)
    assert out["targets"]["one_process"]["rss_mb"] == 250
    assert out["machine"]["cores"] and len(out["machine"]["load_average_at_start"]) == 3


def test_bench_e2e_with_actions_measures_both_ways_in_one_run() -> None:
    rc, out, err = _bench("e2e", "--matches", "1", "--with-actions", "--webhook-delay", "1", timeout=280)
    assert rc == 0, err
    assert out["detections"] == out["banners"] == 1 and out["rounds"] == 1
    with_actions = out["with_actions"]
    assert with_actions["detections"] == 1
    assert with_actions["actions_service_ran"] is True
    # the slow receiver was really called for the detection (and maybe the session start)
    assert with_actions["webhook_requests"] >= 1 and with_actions["receiver_delay_s"] == 1.0
    for figures in (out, with_actions):
        assert set(figures["banner_onset_to_client_ms"]) == {"p50", "p95"}
        assert set(figures["trigger_frame_to_client_ms"]) == {"p50", "p95", "max"}
    assert out["banner_onset_p95_ratio_with_vs_without"] == pytest.approx(
        with_actions["banner_onset_to_client_ms"]["p95"] / out["banner_onset_to_client_ms"]["p95"], abs=0.001)
    # each run on its own, in the order they ran (round 1: without first)
    assert [(run["round"], run["webhook_action"], run["detections"]) for run in out["runs"]] == [
        (1, False, 1), (1, True, 1)]
    assert all(len(run["load_average_at_start"]) == 3 for run in out["runs"])
    assert len(out["machine"]["load_average_at_end"]) == 3
