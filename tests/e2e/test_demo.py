"""`owc demo --once`: the bundled clip through the whole stack, checked against its known result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.settings import DEFAULT_MODEL
from tests.support.ports import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the shipped model is missing"),
]


def test_demo_once_counts_the_clip_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    result = subprocess.run(
        [sys.executable, "-m", "services", "demo", "--once",
         "--set", f"gateway.port={free_port()}", "--set", "capture.metrics_port=0",
         "--set", "inference.metrics_port=0", "--set", "state.metrics_port=0"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)  # stdout is the JSON report alone; logs go to stderr
    assert report["ok"] is True
    assert report["counts"] == report["expected"] == {"victories": 1, "defeats": 0, "draws": 0}
    assert report["status"]["last_outcome"] == "victory"
    assert "all services stopped" in result.stderr
