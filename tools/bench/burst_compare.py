"""``owc bench e2e --burst-compare``: the e2e bench with bursts on and off, alternating, ratios in one run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.bench import stack
from tools.bench.hops import HOPS, summarize
from tools.bench.report import machine


def bench_burst_compare(args: argparse.Namespace) -> int:
    """The e2e bench with bursts on and off, alternating (``--rounds`` pairs), ratios in one run."""
    from training.clips import FPS, evening

    outcomes = (["victory", "defeat", "draw"] * 10)[: args.matches]
    rounds = max(1, int(args.rounds))
    workdir = Path(tempfile.mkdtemp(prefix="owc-bench-clip-"))
    load = machine()
    clip, _expected, starts = evening(workdir, outcomes)
    starts = stack._preroll(clip, starts, int(stack.PREROLL_S * FPS))
    print(f"bench e2e --burst-compare: {len(outcomes)} banners, {rounds} round(s) of bursts on/off "
          f"(alternating which goes first), replayed at {FPS} fps", file=sys.stderr, flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    order: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                print(f"  round {r + 1}: bursts {mode}", file=sys.stderr, flush=True)
                load_before = [round(x, 2) for x in os.getloadavg()]
                run = stack._e2e_run(clip, starts, len(outcomes), args, None, {"capture.burst": mode == "on"})
                runs[mode].append(run)
                order.append({"round": r + 1, "burst": mode == "on", "detections": run["detections"],
                              "banner_onset_to_client_ms": stack._latencies(run["trigger"], run["onset"])[
                                  "banner_onset_to_client_ms"], "load_average_at_start": load_before,
                              "hops_p50_ms": {hop: summarize(run["hops"]).get(f"{hop}_ms", {}).get("p50")
                                              for hop in HOPS}})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {"bench": "e2e --burst-compare", "banners": len(outcomes) * rounds}
    for mode in ("off", "on"):
        onset = [v for run in runs[mode] for v in run["onset"]]
        trigger = [v for run in runs[mode] for v in run["trigger"]]
        result[f"burst_{mode}"] = {
            "detections": sum(run["detections"] for run in runs[mode]),
            **stack._latencies(trigger, onset),
            "hops": summarize([row for run in runs[mode] for row in run.get("hops", [])]),
        }
    on, off = result["burst_on"]["banner_onset_to_client_ms"], result["burst_off"]["banner_onset_to_client_ms"]
    result["banner_onset_p50_ratio_on_vs_off"] = stack._ratio(on["p50"], off["p50"])
    result["banner_onset_p95_ratio_on_vs_off"] = stack._ratio(on["p95"], off["p95"])
    result["target_banner_onset_p95_ms"] = 200
    result["capture_interval_ms"] = 1000 / FPS
    result["runs"] = order
    result["machine"] = load
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    complete = all(run["detections"] == len(outcomes) for mode in runs.values() for run in mode)
    return 0 if complete else 1
