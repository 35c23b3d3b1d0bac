"""``owc bench e2e`` and ``owc bench resources``: the whole stack, measured.

Both start their own stack (embedded Redis in a temporary directory, free
ports, their own key prefix) with the real services, so they measure what a
streamer runs. Print the machine with the numbers: this box may be shared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.cli.cliargs import load_from_args, set_args
from services.common.contracts.codec import text
from services.common.infra.ports import free_port
from services.runner.stack import run_stack
from tools.bench.report import machine, percentile

if TYPE_CHECKING:
    from tools.bench.hops import ReplayClock
from tools.webhook_receiver import Receiver


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def bench_stack(
    source: str, flags: dict[str, Any], args: argparse.Namespace
) -> Iterator[tuple[Any, int, threading.Event, dict[str, Any]]]:
    """Run the whole stack in a thread; yield (supervisor, gateway port, stop, settings info)."""
    workdir = Path(tempfile.mkdtemp(prefix="owc-bench-"))
    port = free_port()
    overrides: dict[str, Any] = {
        "capture.source": source,
        "redis.url": None,
        "redis.data_dir": str(workdir / "data"),
        "redis.embedded_port": 0,
        "redis.prefix": f"owcbench{os.getpid()}",
        "gateway.port": port,
        "capture.metrics_port": 0,
        "inference.metrics_port": 0,
        "state.metrics_port": 0,
        "log.level": "WARNING",
        **flags,
    }
    loaded = load_from_args(args, overrides)
    passthrough = set_args(overrides)
    stop = threading.Event()
    started: dict[str, Any] = {}
    ready = threading.Event()

    def on_started(sup: Any, url: str) -> None:
        started["sup"] = sup
        started["url"] = url
        ready.set()

    thread = threading.Thread(
        target=run_stack, args=(loaded, passthrough), kwargs={"stop": stop, "on_started": on_started},
        daemon=True,
    )
    thread.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the stack did not start within 60 s")
        _wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        yield started["sup"], port, stop, {"prefix": overrides["redis.prefix"], "redis_url": started["url"]}
    finally:
        stop.set()
        thread.join(30)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


# -- e2e latency --------------------------------------------------------------

_PAGE = """<!doctype html><meta charset=utf-8><title>owc bench</title><script>
window.arrivals = [];
const es = new EventSource("/api/v1/channels/default/events");
es.onmessage = (m) => {
  const d = JSON.parse(m.data);
  if (d.event && d.event.type === "detected") window.arrivals.push({t: Date.now(), event: d.event});
};
</script>"""


class _BrowserClient:
    """A real Chromium page holding an EventSource (the overlay's own mechanism)."""

    def __init__(self, base: str) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        self._page = self._browser.new_page()
        # same origin as the gateway: serve the tiny page from a route
        self._page.route(f"{base}/__bench__", lambda route: route.fulfill(body=_PAGE, content_type="text/html"))
        self._page.goto(f"{base}/__bench__")
        self.kind = "chromium"

    def arrivals(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._page.evaluate("window.arrivals")
        return result

    def close(self) -> None:
        self._browser.close()
        self._pw.stop()


class _SseClient:
    """Fallback when Playwright/Chromium is not installed: a plain SSE reader."""

    def __init__(self, base: str) -> None:
        self._arrivals: list[dict[str, Any]] = []
        self._resp = urllib.request.urlopen(f"{base}/api/v1/channels/default/events", timeout=600)
        threading.Thread(target=self._read, daemon=True).start()
        self.kind = "python-sse"

    def _read(self) -> None:
        for raw in self._resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data.get("event") and data["event"]["type"] == "detected":
                    self._arrivals.append({"t": time.time() * 1000, "event": data["event"]})

    def arrivals(self) -> list[dict[str, Any]]:
        return list(self._arrivals)

    def close(self) -> None:
        self._resp.close()


WEBHOOK_NAME = "bench"


def webhook_flags(receiver: Receiver) -> dict[str, Any]:
    """One JSON webhook to ``receiver``: the actions service runs (``owc run`` starts it only with an action)."""
    return {"actions.webhooks": [{"url": receiver.url, "name": WEBHOOK_NAME}], "actions.metrics_port": 0}


def _e2e_run(
    clip: Path, starts: list[int], banners: int, args: argparse.Namespace, receiver: Receiver | None,
    extra_flags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stack on the replay; the latencies of its detections (and what the receiver got)."""
    from tools.bench.hops import onset_at, per_detection
    from training.clips import FPS

    flags: dict[str, Any] = {"capture.fps": FPS, "capture.speed": 1.0, "state.cooldown_s": 6, "state.required_none": 8,
                             **(extra_flags or {})}
    if receiver is not None:
        flags.update(webhook_flags(receiver))
    actions_running = False
    with bench_stack(f"replay:{clip}", flags, args) as (sup, port, _stop, info):
        base = f"http://127.0.0.1:{port}"
        try:
            client: _BrowserClient | _SseClient = _BrowserClient(base)
        except Exception as exc:
            _progress(f"  (Chromium unavailable: {exc}; using a Python SSE client)")
            client = _SseClient(base)
        try:
            deadline = time.monotonic() + PREROLL_S + banners * 16 + 90
            seen = 0
            while time.monotonic() < deadline:
                arrivals = client.arrivals()
                if len(arrivals) != seen:
                    seen = len(arrivals)
                    _progress(f"  detections received: {seen}/{banners}")
                replay_over = not sup.running("capture")
                if seen >= banners or (replay_over and time.monotonic() > deadline - 60):
                    break
                time.sleep(0.5)
            arrivals = client.arrivals()
            if receiver is not None:
                actions_running = sup.running("actions")
                # each detection's webhook request arrives (the answer takes the receiver's delay)
                wait_end = time.monotonic() + 15
                while len(receiver.snapshot()) < len(arrivals) and time.monotonic() < wait_end:
                    time.sleep(0.2)
        finally:
            client.close()
        clock = _replay_clock(info, FPS)
        hops = per_detection(info, arrivals, starts, FPS)  # the latency budget per hop (tools/bench/hops.py)
    trigger = []
    onset = []
    for arrival in arrivals:
        ev = arrival["event"]
        trigger.append(arrival["t"] - ev["captured_at"])
        if clock is not None:
            # when this banner first appeared: the replay time of its first frame (frames are told apart by time:
            # capture leaves some out in a cooldown, so seq i+1 is not frame i)
            onset.append(arrival["t"] - onset_at(ev["captured_at"], starts, clock))
    run: dict[str, Any] = {"client": client.kind, "detections": len(arrivals), "trigger": trigger, "onset": onset,
                           "hops": hops}
    if receiver is not None:
        run["actions_running"] = actions_running
    return run


def _latencies(trigger: list[float], onset: list[float]) -> dict[str, Any]:
    return {
        "trigger_frame_to_client_ms": {"p50": round(percentile(trigger, 50), 1),
                                       "p95": round(percentile(trigger, 95), 1),
                                       "max": round(max(trigger, default=float("nan")), 1)},
        "banner_onset_to_client_ms": {"p50": round(percentile(onset, 50), 1),
                                      "p95": round(percentile(onset, 95), 1)},
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b and not math.isnan(a) and not math.isnan(b) else None


PREROLL_S = 10.0  # gameplay before the first banner: Chromium is listening before anything is counted


def _preroll(clip: Path, starts: list[int], frames: int) -> list[int]:
    """Put ``frames`` copies of the clip's first (gameplay) frame in front; return the moved banner starts.

    On a loaded machine Chromium can take longer to start than the clip's first
    seconds: without this, the first detection happens before the page listens.
    """
    names = sorted(clip.glob("frame_*.jpg"))
    for path in reversed(names):
        index = int(path.stem.split("_")[1])
        path.rename(clip / f"frame_{index + frames:05d}.jpg")
    first = (clip / f"frame_{frames:05d}.jpg").read_bytes()
    for index in range(frames):
        (clip / f"frame_{index:05d}.jpg").write_bytes(first)
    return [s + frames for s in starts]


def bench_e2e(args: argparse.Namespace) -> int:
    from tools.bench.hops import summarize
    from training.clips import FPS, evening

    outcomes = (["victory", "defeat", "draw"] * 10)[: args.matches]
    with_actions = bool(getattr(args, "with_actions", False))
    rounds = max(1, int(getattr(args, "rounds", 1))) if with_actions else 1
    workdir = Path(tempfile.mkdtemp(prefix="owc-bench-clip-"))
    load = machine()  # before the bench adds its own load
    clip, _expected, starts = evening(workdir, outcomes)
    starts = _preroll(clip, starts, int(PREROLL_S * FPS))
    _progress(f"bench e2e: {len(outcomes)} banners after {PREROLL_S:g} s of gameplay, replayed at {FPS} fps "
              "(the default 250 ms capture interval)")
    receiver: Receiver | None = None
    if with_actions:
        receiver = Receiver(default_delay_s=args.webhook_delay).start()
        _progress(f"  with and without a webhook action to a receiver answering after {args.webhook_delay:g} s, "
                  f"{rounds} round(s), alternating which goes first")
    runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    try:
        for r in range(rounds):
            order = ["without", "with"] if r % 2 == 0 else ["with", "without"]
            for mode in order if with_actions else ["without"]:
                if with_actions:
                    _progress(f"  round {r + 1}: {mode} the webhook action")
                before = len(receiver.snapshot()) if receiver is not None else 0
                load_before = [round(x, 2) for x in os.getloadavg()]
                run = _e2e_run(clip, starts, len(outcomes), args, receiver if mode == "with" else None)
                run["round"], run["load_average_at_start"] = r + 1, load_before
                run["order"] = sum(len(rs) for rs in runs.values())
                if receiver is not None and mode == "with":
                    run["webhook_requests"] = len(receiver.snapshot()) - before
                runs[mode].append(run)
    finally:
        if receiver is not None:
            receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    def pooled(mode: str, key: str) -> list[float]:
        return [v for run in runs[mode] for v in run[key]]

    base = runs["without"]
    complete = all(run["detections"] == len(outcomes) for mode in runs.values() for run in mode)
    result: dict[str, Any] = {
        "bench": "e2e",
        "client": base[0]["client"],
        "detections": sum(run["detections"] for run in base),
        "banners": len(outcomes) * rounds,
        **_latencies(pooled("without", "trigger"), pooled("without", "onset")),
        "hops": summarize([row for run in base for row in run["hops"]]),
        "hop_rows": [row for run in base for row in run["hops"]],  # per detection (tools/bench/hops.py)
        "target_banner_onset_p95_ms": 200,  # DESIGN.md targets: banner on screen -> overlay updated
        "capture_interval_ms": 1000 / FPS,
        "machine": load,
    }
    if with_actions:
        with_runs = runs["with"]
        requests = sum(run["webhook_requests"] for run in with_runs)
        detections = sum(run["detections"] for run in with_runs)
        latencies = _latencies(pooled("with", "trigger"), pooled("with", "onset"))
        onset_p95 = latencies["banner_onset_to_client_ms"]["p95"]
        base_p95 = result["banner_onset_to_client_ms"]["p95"]
        result["rounds"] = rounds
        result["with_actions"] = {
            "action": f"one JSON webhook to a local receiver answering after {args.webhook_delay:g} s",
            "receiver_delay_s": args.webhook_delay,
            "detections": detections,
            "webhook_requests": requests,
            "actions_service_ran": all(run["actions_running"] for run in with_runs),
            **latencies,
        }
        # each run on its own, in the order they ran: the load on this shared machine moves between runs
        result["runs"] = [
            {"round": run["round"], "webhook_action": mode == "with", "detections": run["detections"],
             "banner_onset_to_client_ms": _latencies(run["trigger"], run["onset"])["banner_onset_to_client_ms"],
             "load_average_at_start": run["load_average_at_start"]}
            for mode, run in sorted(((m, run) for m, rs in runs.items() for run in rs),
                                    key=lambda item: item[1]["order"])
        ]
        result["banner_onset_p95_ratio_with_vs_without"] = _ratio(onset_p95, base_p95)
        result["banner_onset_p50_ratio_with_vs_without"] = _ratio(
            latencies["banner_onset_to_client_ms"]["p50"], result["banner_onset_to_client_ms"]["p50"])
        complete = complete and requests >= detections > 0 and result["with_actions"]["actions_service_ran"]
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0 if complete else 1


def _replay_clock(info: dict[str, Any], fps: float) -> ReplayClock | None:
    """The bench replay's clock (tools/bench/hops.py), or None if Redis cannot say."""
    import redis

    from services.common.contracts.keys import Keys
    from tools.bench.hops import replay_clock

    client = redis.Redis.from_url(info["redis_url"])
    try:
        return replay_clock(client, Keys(info["prefix"]), fps)
    except redis.RedisError:
        return None
    finally:
        client.close()


# -- resources ----------------------------------------------------------------


# < the demo clip's 30 s, and re-armed by 2 s of gameplay (the e2e bench's values): every loop is a result
RESULTS_SETTINGS = {"state.cooldown_s": 20.0, "state.required_none": 8}


def _last_event_id(client: Any, stream: str) -> str:
    last = client.xrevrange(stream, count=1)
    return text(last[0][0]) if last else ""


def idle_cpu(samples: list[tuple[float, float, bool]]) -> tuple[float | None, float, float]:
    """CPU% of one core over the quiet intervals: ``(percent, quiet seconds, busy seconds)``.

    ``samples`` are ``(monotonic time, process CPU seconds, something happened)``
    taken once a second; "something" is a new event in the log or a request at the
    receiver since the previous sample. An interval is busy when something happened
    in it or in the interval before (the delivery may straddle a sample), quiet otherwise.
    """
    quiet_s = busy_s = quiet_cpu = 0.0
    for i in range(1, len(samples)):
        (t0, c0, _), (t1, c1, happened) = samples[i - 1], samples[i]
        busy = happened or (i >= 2 and samples[i - 1][2])
        if busy:
            busy_s += t1 - t0
        else:
            quiet_s += t1 - t0
            quiet_cpu += c1 - c0
    percent = round(100 * quiet_cpu / quiet_s, 3) if quiet_s else None
    return percent, round(quiet_s, 1), round(busy_s, 1)
