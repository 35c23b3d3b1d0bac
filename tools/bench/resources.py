"""``owc bench resources``: what the stack costs the streamer's PC, every process counted.

Runs the real ``owc run`` as a subprocess — one process (the default) and
``--processes`` — side by side in one bench run, on the looping demo clip with one
webhook action, and measures the whole process tree the user would have: the
keeper / supervisor, redis-server and every service. RSS counts shared pages in
every process; PSS splits them between the processes sharing them (the real
footprint). Then, optionally, the one-process stack with no OBS running (capture
waiting), its idle cost. Besides CPU: each process's wake-ups a second (its
threads' context switches: on a small VM a wake-up alone costs tens of µs) and
the commands Redis ran a second, in all and by command (those a script runs counted, the bench's own not), and
the frames capture published a second (fewer in a cooldown: every hop's work follows the frames).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

from services.common.cli.cliargs import set_args
from services.common.infra.ports import free_port
from tools.bench.report import machine
from tools.bench.stack import RESULTS_SETTINGS, _last_event_id, _progress, _ratio, idle_cpu, webhook_flags
from tools.webhook_receiver import Receiver

MODES = {"one_process": [], "processes": ["--processes"]}
TARGETS = {
    "one_process": {"rss_mb": 250, "cpu_percent_of_one_core": 2.5, "no_obs_cpu_percent_of_one_core": 0.5},
    "processes": {"rss_mb": 450, "cpu_percent_of_one_core": 5},
    "actions_idle_cpu_percent_of_one_core": 0.5,
}


def process_name(cmdline: list[str], root: bool, one_process: bool) -> str:
    """What a process of the tree is, from its command line."""
    if root:
        return "keeper" if one_process else "supervisor"
    if cmdline and "redis-server" in os.path.basename(cmdline[0]):
        return "redis"
    if "services.runner.inproc" in cmdline:
        return "stack"
    if "services" in cmdline and cmdline.index("services") + 1 < len(cmdline):
        return cmdline[cmdline.index("services") + 1]
    return os.path.basename(cmdline[0]) if cmdline else "?"


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Every thread of ``pid``: ``{tid: (service, CPU seconds)}``.

    In one process the stack's services are threads named ``owc-<service>`` (``services/runner/host.py``; the
    threads a service starts, onnxruntime's among them, inherit the name), so a thread's name says whose CPU it
    is. The time comes from ``schedstat`` (ns), not ``stat``'s 10 ms ticks: a service at 0.3% of a core makes
    ~12 ticks in 40 s, too few to compare two runs by.
    """
    out: dict[int, tuple[str, float]] = {}
    with suppress(OSError):
        tids = os.listdir(f"/proc/{pid}/task")
        for tid in tids:
            with suppress(OSError, ValueError, IndexError):
                base = f"/proc/{pid}/task/{tid}"
                with open(f"{base}/comm") as f:
                    comm = f.read().strip()
                with open(f"{base}/schedstat") as f:
                    seconds = int(f.read().split()[0]) / 1e9
                name = comm[4:] if comm.startswith("owc-") else ("main" if tid == str(pid) else "other")
                out[int(tid)] = (name, seconds)
    return out


def wakeups(pid: int) -> int:
    """Context switches of every thread of ``pid`` so far (voluntary and not): each is a wake-up of a thread
    (``/proc/<pid>/status`` alone counts the main thread only)."""
    total = 0
    with suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
    return total


def redis_commands(client: Any) -> dict[str, int]:
    """Commands Redis has run so far, by command (``INFO commandstats``; those a script runs counted too)."""
    return {name.removeprefix("cmdstat_"): int(v.get("calls", 0)) for name, v in client.info("commandstats").items()}


def commands_per_s(before: dict[str, int], after: dict[str, int], own: dict[str, int],
                   seconds: float) -> dict[str, float]:
    """Each command's calls a second between two :func:`redis_commands`, the bench's ``own`` taken off;
    the busiest first."""
    rates = {name: (n - before.get(name, 0) - own.get(name, 0)) / seconds for name, n in after.items()}
    return {name: round(rate, 2) for name, rate in sorted(rates.items(), key=lambda x: -x[1]) if rate > 0.005}


class Tree:
    """The processes under ``root`` (itself included), named, with their CPU time since first seen."""

    def __init__(self, root: int, one_process: bool) -> None:
        import psutil

        self.root = psutil.Process(root)
        self.one_process = one_process
        self.names: dict[int, str] = {}
        self.first_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self.first_wakeups: dict[int, int] = {}
        self.last_wakeups: dict[int, int] = {}
        self.rss: dict[str, int] = {}
        self.pss: dict[str, int] = {}
        self.total_rss = 0
        self.total_pss = 0
        # the one-process stack's threads: {tid: (service, CPU seconds)} when first and last seen
        self.first_threads: dict[int, tuple[str, float]] = {}
        self.last_threads: dict[int, tuple[str, float]] = {}

    def _processes(self) -> list[Any]:
        import psutil

        with suppress(psutil.NoSuchProcess):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def sample(self, memory: bool) -> float:
        """Read every process's CPU time (and memory); return the tree's CPU seconds so far."""
        import psutil

        rss = pss = 0
        for proc in self._processes():
            try:
                if proc.pid not in self.names:
                    name = process_name(proc.cmdline(), proc.pid == self.root.pid, self.one_process)
                    if name in self.names.values():
                        name = f"{name}-{proc.pid}"
                    self.names[proc.pid] = name
                t = proc.cpu_times()
                cpu = float(t.user + t.system)
                self.first_cpu.setdefault(proc.pid, cpu)
                self.last_cpu[proc.pid] = cpu
                woke = wakeups(proc.pid)
                self.first_wakeups.setdefault(proc.pid, woke)
                self.last_wakeups[proc.pid] = woke
                if self.names[proc.pid] == "stack":
                    threads = thread_cpu(proc.pid)
                    for tid, seen in threads.items():
                        # a thread started after the first look counts from 0 (all its time is in the window)
                        self.first_threads.setdefault(tid, (seen[0], 0.0 if self.last_threads else seen[1]))
                    self.last_threads.update(threads)
                if memory:
                    full = proc.memory_full_info()
                    name = self.names[proc.pid]
                    self.rss[name] = max(self.rss.get(name, 0), full.rss)
                    self.pss[name] = max(self.pss.get(name, 0), full.pss)
                    rss += full.rss
                    pss += full.pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if memory:
            self.total_rss = max(self.total_rss, rss)
            self.total_pss = max(self.total_pss, pss)
        return sum(self.last_cpu.values()) - sum(self.first_cpu.values())

    def report(self, elapsed: float) -> dict[str, Any]:
        per: dict[str, Any] = {}
        for pid, name in self.names.items():
            used = self.last_cpu.get(pid, 0.0) - self.first_cpu.get(pid, 0.0)
            entry = per.setdefault(name, {"cpu_percent_of_one_core": 0.0, "rss_mb": None, "pss_mb": None,
                                          "wakeups_per_s": 0.0})
            entry["cpu_percent_of_one_core"] = round(entry["cpu_percent_of_one_core"] + 100 * used / elapsed, 2)
            woke = self.last_wakeups.get(pid, 0) - self.first_wakeups.get(pid, 0)
            entry["wakeups_per_s"] = round(entry["wakeups_per_s"] + woke / elapsed, 1)
            if name in self.rss:
                entry["rss_mb"] = round(self.rss[name] / 2**20, 1)
                entry["pss_mb"] = round(self.pss[name] / 2**20, 1)
        cpu = sum(self.last_cpu.values()) - sum(self.first_cpu.values())
        out: dict[str, Any] = {
            "processes": per,
            "total": {"cpu_percent_of_one_core": round(100 * cpu / elapsed, 2),
                      "rss_mb": round(self.total_rss / 2**20, 1), "pss_mb": round(self.total_pss / 2**20, 1)},
        }
        if self.last_threads:  # one process: the stack process's CPU by service (its threads' names)
            services: dict[str, float] = {}
            for tid, (name, last) in self.last_threads.items():
                services[name] = services.get(name, 0.0) + last - self.first_threads.get(tid, (name, last))[1]
            out["stack_threads_cpu_percent_of_one_core"] = {
                name: round(100 * used / elapsed, 3) for name, used in sorted(services.items(), key=lambda x: -x[1])
            }
        return out


def start_owc_run(workdir: Path, extra: list[str], flags: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    """`owc run` as the user starts it (its own home and data folder, free ports); (process, Redis URL)."""
    port = free_port()
    settings: dict[str, Any] = {
        "redis.data_dir": str(workdir / "data"),
        "redis.embedded_port": free_port(),
        "redis.prefix": f"owcbench{os.getpid()}",
        "gateway.port": port,
        "capture.metrics_port": free_port(),
        "inference.metrics_port": free_port(),
        "state.metrics_port": free_port(),
        "actions.metrics_port": free_port(),
        "log.level": "WARNING",
        **flags,
    }
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OWC_")}
    env["OWC_HOME"] = str(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "owc.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "services", "run", *extra, *set_args(settings)],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`owc run` exited with {proc.returncode}: see {workdir / 'owc.log'}")
        with suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            if resp.status == 200:
                return proc, f"redis://127.0.0.1:{settings['redis.embedded_port']}/0"
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    raise RuntimeError(f"`owc run` did not answer within 90 s: see {workdir / 'owc.log'}")


def stop_owc_run(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_mode(mode: str, clip: Path, receiver: Receiver | None, seconds: float, warmup: float,
                 source: str | None = None) -> dict[str, Any]:
    import redis

    from services.common.contracts.keys import Keys
    from training.demo_clip import FPS

    one_process = mode.startswith("one_process")
    flags: dict[str, Any] = {"capture.source": source or f"replay:{clip}", "capture.fps": FPS, "capture.speed": 1.0,
                             "capture.loop": True, **RESULTS_SETTINGS}
    if receiver is not None:
        flags.update(webhook_flags(receiver))
    if source == "obs":
        flags.update({"obs.port": free_port()})  # nothing listens: capture waits for OBS
    workdir = Path(tempfile.mkdtemp(prefix="owc-bench-res-"))
    # the log level stays WARNING; --log-level is a flag the run takes like a user would
    proc, url = start_owc_run(workdir, MODES["one_process" if one_process else "processes"], flags)
    try:
        time.sleep(warmup)
        tree = Tree(proc.pid, one_process)
        client = redis.Redis.from_url(url)
        keys = Keys(f"owcbench{os.getpid()}")
        events = keys.events("default")
        last_event = _last_event_id(client, events)
        # frames published in the window (the seq counter): capture takes fewer in a cooldown
        # (services/capture/cooldown.py), and every hop's work follows the frames
        seq0 = _seq(client, keys)
        requests0 = requests = len(receiver.snapshot()) if receiver else 0
        results = 0
        commands0 = redis_commands(client)
        # the bench's own commands in the window: the INFO at the end, an XREVRANGE a second, XRANGEs
        own = {"info": 1, "xrevrange": 0, "xrange": 0}
        samples: list[tuple[float, float, bool]] = [(time.monotonic(), tree.sample(True), False)]
        actions_samples: list[tuple[float, float, bool]] = []
        t0 = time.monotonic()
        tick = 0
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            tick += 1
            own["xrevrange"] += 1
            event = _last_event_id(client, events)
            now_requests = len(receiver.snapshot()) if receiver else 0
            happened = event != last_event or now_requests != requests
            samples.append((time.monotonic(), tree.sample(memory=tick % 5 == 0), happened))
            actions_pid = next((p for p, n in tree.names.items() if n == "actions"), None)
            if actions_pid is not None:
                actions_samples.append((time.monotonic(), tree.last_cpu[actions_pid], happened))
            if event != last_event:
                own["xrange"] += 1
                new: list[Any] = client.xrange(events, f"({last_event}" if last_event else "-", event)  # type: ignore[assignment]
                results += sum(f.get(b"type") in (b"detected", b"adjusted") for _, f in new)
            last_event, requests = event, now_requests
        tree.sample(True)
        elapsed = time.monotonic() - t0
        commands1 = redis_commands(client)
        frames = _seq(client, keys) - seq0
        commands = sum(commands1.values()) - sum(commands0.values()) - sum(own.values())
        by_command = commands_per_s(commands0, commands1, own, elapsed)
        client.close()
    finally:
        stop_owc_run(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    out = tree.report(elapsed)
    idle_percent, quiet_s, busy_s = idle_cpu(samples)
    out.update(seconds=round(elapsed, 1), frames_per_s=round(frames / elapsed, 2),
               cpu_percent_of_one_core_idle=idle_percent, idle_seconds=quiet_s,
               busy_seconds=busy_s, results_in_window=results, webhook_requests_in_window=requests - requests0,
               redis_commands_per_s=round(commands / elapsed, 1), redis_commands_by_command=by_command)
    if actions_samples:
        a_idle, a_quiet, a_busy = idle_cpu(actions_samples)
        out["actions_process"] = {"cpu_percent_of_one_core_idle": a_idle, "idle_seconds": a_quiet,
                                  "busy_seconds": a_busy}
    return out


def _seq(client: Any, keys: Any) -> int:
    """The demo channel's last frame seq (``INCR owc:seq:default``): frames published so far."""
    return int(client.get(keys.seq("default")) or 0)


def whole_loops(seconds: float, loop_s: float) -> bool:
    """Whether a window of ``seconds`` holds a whole number of the demo clip's loops (±1 s): only then is its mix
    of banner and gameplay frames the same wherever in the loop it starts, so two runs' CPU compare."""
    loops = round(seconds / loop_s)
    return loops >= 1 and abs(seconds - loops * loop_s) <= 1.0


def bench_resources(args: argparse.Namespace) -> int:
    from training.demo_clip import FPS, FRAME_COUNT, ensure_demo_clip

    clip = ensure_demo_clip()
    load = machine()  # before the bench adds its own load
    wanted = list(MODES) if args.mode == "both" else [args.mode.replace("-", "_")]
    loop_s = FRAME_COUNT / FPS
    _progress(
        f"bench resources: `owc run` ({' and '.join(wanted)}) on the looping demo clip ({FPS} fps) for "
        f"{args.seconds:.0f} s each, one webhook action to a local receiver; state.cooldown_s=20 and "
        f"state.required_none=8 so each {loop_s:.0f} s loop is a result; every process of the run counted"
    )
    if not whole_loops(args.seconds, loop_s):
        # the inference share moves by up to a third between runs with where in the loop the window starts
        _progress(f"  note: {args.seconds:.0f} s is not a whole number of {loop_s:.0f} s loops: the share of banner "
                  f"frames, and so the CPU, differs from run to run; --seconds {2 * loop_s:.0f} compares runs")
    receiver = Receiver().start()
    modes: dict[str, Any] = {}
    try:
        for mode in wanted:
            _progress(f"  {mode} …")
            modes[mode] = measure_mode(mode, clip, receiver, args.seconds, args.warmup)
            modes[mode]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        receiver.stop()
    result: dict[str, Any] = {"bench": "resources", "capture_interval_ms": 1000 / FPS, "demo_loop_s": loop_s,
                              "whole_loops": whole_loops(args.seconds, loop_s), "modes": modes}
    if args.no_obs_seconds > 0 and "one_process" in wanted:
        _progress(f"  one process, no OBS running (capture waiting) for {args.no_obs_seconds:.0f} s …")
        no_obs = measure_mode("one_process", clip, None, args.no_obs_seconds, args.warmup, source="obs")
        result["one_process_no_obs"] = {"total": no_obs["total"], "processes": no_obs["processes"],
                                        "seconds": no_obs["seconds"],
                                        "redis_commands_per_s": no_obs["redis_commands_per_s"],
                                        "redis_commands_by_command": no_obs["redis_commands_by_command"]}
        if "stack_threads_cpu_percent_of_one_core" in no_obs:
            result["one_process_no_obs"]["stack_threads_cpu_percent_of_one_core"] = no_obs[
                "stack_threads_cpu_percent_of_one_core"]
    if len(modes) == 2:
        one, many = modes["one_process"]["total"], modes["processes"]["total"]
        result["one_process_vs_processes"] = {k: _ratio(one[k], many[k]) for k in one}
    result["settings"] = RESULTS_SETTINGS
    result["targets"] = TARGETS
    result["machine"] = load
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0
