"""`owc demo --once`: the bundled clip through the whole stack, checked against its known result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.config.settings import DEFAULT_MODEL
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


def test_demo_says_when_the_clip_was_counted_and_how_to_stop(tmp_path: Path) -> None:
    """`make demo` (no --once): a summary once the clip's match is counted, Ctrl+C stops everything."""
    import signal

    from tests.support.waiting import wait_until

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services", "demo",
             "--set", f"gateway.port={free_port()}", "--set", "capture.metrics_port=0",
             "--set", "inference.metrics_port=0", "--set", "state.metrics_port=0"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )
        try:
            def summarised() -> bool:
                return "the demo counted its match" in log.read_text(errors="replace") or proc.poll() is not None

            wait_until(summarised, timeout=180, message="the demo's summary")
            text = log.read_text(errors="replace")
            assert "the demo counted its match: 1 W / 0 L / 0 D" in text and "Ctrl+C to stop" in text, text[-3000:]
            assert "/overlay" in text and "/admin" in text
            assert f"home {tmp_path}" in text  # where owc.toml, custom.css and data/ are looked for
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
