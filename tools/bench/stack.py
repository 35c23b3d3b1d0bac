"""``owc bench e2e`` and ``owc bench resources``: the whole stack, measured.

Both start their own stack (embedded Redis in a temporary directory, free
ports, their own key prefix) with the real services, so they measure what a
streamer runs. Print the machine with the numbers: this box may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from services.common.cliargs import load_from_args, set_args
from services.common.ports import free_port
from services.runner.stack import run_stack
from tools.bench.report import machine, percentile


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
        target=run_stack, args=(loaded.settings, passthrough), kwargs={"stop": stop, "on_started": on_started},
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


def bench_e2e(args: argparse.Namespace) -> int:
    from training.clips import FPS, evening

    outcomes = (["victory", "defeat", "draw"] * 10)[: args.matches]
    workdir = Path(tempfile.mkdtemp(prefix="owc-bench-clip-"))
    clip, _expected, starts = evening(workdir, outcomes)
    _progress(f"bench e2e: {len(outcomes)} banners, replayed at {FPS} fps (the default 250 ms capture interval)")
    flags = {"capture.fps": FPS, "capture.speed": 1.0, "state.cooldown_s": 6, "state.required_none": 8}
    try:
        with bench_stack(f"replay:{clip}", flags, args) as (sup, port, _stop, info):
            base = f"http://127.0.0.1:{port}"
            try:
                client: _BrowserClient | _SseClient = _BrowserClient(base)
            except Exception as exc:
                _progress(f"  (Chromium unavailable: {exc}; using a Python SSE client)")
                client = _SseClient(base)
            try:
                deadline = time.monotonic() + len(outcomes) * 15 / 1 + 90
                seen = 0
                while time.monotonic() < deadline:
                    arrivals = client.arrivals()
                    if len(arrivals) != seen:
                        seen = len(arrivals)
                        _progress(f"  detections received: {seen}/{len(outcomes)}")
                    replay_over = not sup.running("capture")
                    if seen >= len(outcomes) or (replay_over and time.monotonic() > deadline - 60):
                        break
                    time.sleep(0.5)
                arrivals = client.arrivals()
            finally:
                client.close()
            frame_times = _frame_times(info)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    trigger = []
    onset = []
    for arrival in arrivals:
        ev = arrival["event"]
        trigger.append(arrival["t"] - ev["captured_at"])
        seq = ev.get("frame_seq")
        # the frame where this banner first appeared: the start index before the trigger frame
        idx = (seq or 1) - 1
        first = max((s for s in starts if s <= idx), default=idx)
        onset_at = frame_times.get(first + 1)
        if onset_at is not None:
            onset.append(arrival["t"] - onset_at)
    result = {
        "bench": "e2e",
        "client": client.kind,
        "detections": len(arrivals),
        "banners": len(outcomes),
        "trigger_frame_to_client_ms": {"p50": round(percentile(trigger, 50), 1),
                                       "p95": round(percentile(trigger, 95), 1),
                                       "max": round(max(trigger, default=float("nan")), 1)},
        "banner_onset_to_client_ms": {"p50": round(percentile(onset, 50), 1),
                                      "p95": round(percentile(onset, 95), 1)},
        "target_p95_ms": 600,
        "capture_interval_ms": 1000 / FPS,
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    return 0 if len(arrivals) == len(outcomes) else 1


def _frame_times(info: dict[str, Any]) -> dict[int, int]:
    """seq -> captured_at of every frame still in the frames stream."""
    import redis

    from services.common.keys import Keys
    from services.common.messages import Frame

    client = redis.Redis.from_url(info["redis_url"])
    try:
        out: dict[int, int] = {}
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(Keys(info["prefix"]).frames)  # type: ignore[assignment]
        for _id, fields in entries:
            frame = Frame.from_fields(fields)
            out[frame.seq] = frame.captured_at
        return out
    except redis.RedisError:
        return {}
    finally:
        client.close()


# -- resources ----------------------------------------------------------------


def bench_resources(args: argparse.Namespace) -> int:
    import psutil

    from training.demo_clip import FPS, ensure_demo_clip

    clip = ensure_demo_clip()
    flags = {"capture.fps": FPS, "capture.speed": 1.0, "capture.loop": True}
    _progress(
        f"bench resources: the stack at default settings on a looping replay ({FPS} fps) for {args.seconds:.0f} s"
    )
    with bench_stack(f"replay:{clip}", flags, args) as (sup, _port, _stop, _info):
        time.sleep(args.warmup)

        def procs() -> dict[str, psutil.Process]:
            out: dict[str, psutil.Process] = {}
            for child in sup.children:
                if child.proc is not None:
                    with suppress(psutil.NoSuchProcess):
                        out[child.spec.name] = psutil.Process(child.proc.pid)
            return out

        def cpu(p: psutil.Process) -> float:
            t = p.cpu_times()
            return float(t.user + t.system)

        start = procs()
        cpu0 = {n: cpu(p) for n, p in start.items()}
        rss: dict[str, list[int]] = {n: [] for n in start}
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            for name, p in start.items():
                with suppress(psutil.NoSuchProcess):
                    rss[name].append(p.memory_info().rss)
            left = args.seconds - (time.monotonic() - t0)
            if int(left) % 10 == 0:
                _progress(f"  {left:.0f} s left")
            time.sleep(1.0)
        elapsed = time.monotonic() - t0
        services: dict[str, Any] = {}
        for name, p in start.items():
            try:
                used = cpu(p) - cpu0[name]
            except psutil.NoSuchProcess:
                continue
            services[name] = {
                "cpu_percent_of_one_core": round(100 * used / elapsed, 2),
                "rss_mb": round(max(rss[name]) / 2**20, 1) if rss[name] else None,
            }
    total_cpu = round(sum(s["cpu_percent_of_one_core"] for s in services.values()), 2)
    total_rss = round(sum(s["rss_mb"] or 0 for s in services.values()), 1)
    result = {
        "bench": "resources",
        "seconds": round(elapsed, 1),
        "capture_interval_ms": 1000 / FPS,
        "services": services,
        "total": {"cpu_percent_of_one_core": total_cpu, "rss_mb": total_rss},
        "targets": {"cpu_percent_of_one_core": 5, "rss_mb": 400},
        "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    return 0
