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

from services.common.settings import DEFAULT_MODEL

pytestmark = [pytest.mark.slow]

if not DEFAULT_MODEL.exists():
    pytest.skip("the shipped model models/victory_classifier.onnx is missing", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]


def _bench(*argv: str, timeout: float) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-m", "services", "bench", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def test_bench_resources_includes_the_actions_service_and_its_idle_figure() -> None:
    rc, out, err = _bench("resources", "--seconds", "4", "--warmup", "1", timeout=180)
    assert rc == 0, err
    services = out["services"]
    assert {"redis", "state", "actions", "gateway", "inference", "capture"} <= set(services), services
    for figures in services.values():
        assert set(figures) == {"cpu_percent_of_one_core", "rss_mb"}
    actions = out["actions"]
    assert actions["cpu_percent_of_one_core_with_results"] == services["actions"]["cpu_percent_of_one_core"]
    assert actions["rss_mb"] == services["actions"]["rss_mb"] > 0
    # every second of the window is either quiet or around a result
    assert actions["idle_seconds"] + actions["busy_seconds"] == pytest.approx(out["seconds"], abs=1.0)
    # a 4 s window may hold no result: these are counts, and idle CPU is there when there were idle seconds
    assert isinstance(actions["results_in_window"], int) and isinstance(actions["webhook_requests_in_window"], int)
    assert (actions["cpu_percent_of_one_core_idle"] is not None) == (actions["idle_seconds"] > 0)
    # the totals keep their meaning (the whole stack) and the stack without actions is next to them
    assert out["total"]["rss_mb"] == pytest.approx(
        out["total_without_actions"]["rss_mb"] + services["actions"]["rss_mb"], abs=0.2)
    assert out["targets"]["actions_idle_cpu_percent_of_one_core"] == 0.5
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
