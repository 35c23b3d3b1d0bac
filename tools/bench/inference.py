"""``owc bench inference``: the real worker against a real redis-server.

The bench starts its own redis-server (AOF off: it measures the worker, not
the disk), fills ``<random prefix>:frames`` with generated 640×360 JPEG
frames (quality 80, game-like content), then runs the real
:class:`~services.inference.worker.InferenceWorker` in 1, then 2 worker
processes (each pinned to its own core when there are enough cores, one
onnxruntime thread, one OpenCV thread) and measures:

- ``frames_per_second``: frames acked / (last ack − first read), over all
  workers, with the configured ``inference.batch_size`` (default 8): how fast a
  backlog is worked off;
- ``p50_ms``/``p99_ms``: per-frame latency from the XREADGROUP that fetched the
  frame to the MULTI/EXEC that published its label and acked it (Redis I/O
  included), measured in a second run with batches of 1 — what a live frame
  sees, since live traffic (a few frames/s per channel) arrives one at a time.
  Frames of one batch share their batch's latency, so the batched run's
  latencies (also printed) are batch-sized, not per-frame.

The frames are stamped "now" and the run uses ``max_frame_age_ms`` = 1 h so
the pre-filled backlog is not dropped as stale (the age check still runs).
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import numpy as np

from services.common.config.settings import InferenceSettings, Settings
from services.common.contracts.keys import GROUP_INFERENCE, Keys
from services.common.contracts.messages import Frame
from tools.bench.frames import HEIGHT, QUALITY, WIDTH, bench_frames, make_frames
from tools.bench.report import machine as common_machine
from tools.bench.report import percentile


def detector_costs(model: Path, gameplay: list[tuple[bytes, int, int]],
                   banners: list[tuple[bytes, int, int]], repeat: int = 3) -> dict[str, Any]:
    """CPU per frame of each stage, in this process on one thread (no Redis).

    ``gate_only``: decode + preprocess + the gate on every gameplay frame;
    ``gate_and_reader``: the whole detector on the same frames (the reader
    runs on the gate's candidates only) — the average a live feed costs;
    ``reader_per_candidate``: the reader's time on banner frames, which are
    always candidates (what confirming a match end costs); ``confirm_per_candidate``:
    a fresh reading and the list check of one banner frame, its CPU on one thread
    and its wall time with ``inference.reader_threads`` as a worker runs it.
    """
    import cv2

    from services.inference.classifier import Classifier

    cv2.setNumThreads(1)
    clf = Classifier(model, intra_op_threads=1, warmup_batch=1)

    def cpu_ms(fn: Any, *args: Any) -> tuple[float, Any]:
        t0 = time.thread_time()
        out = fn(*args)
        return (time.thread_time() - t0) * 1000.0, out

    gate_ms: list[float] = []
    decode_ms: list[float] = []
    jpeg_ms: list[float] = []  # the decode alone (header check, reduced JPEG decode)
    model_ms: list[float] = []
    full_ms: list[float] = []
    candidates = 0
    for _ in range(repeat):
        for data, w, h in gameplay:
            ms_jpeg, image = cpu_ms(clf.decode, data, w, h)
            ms_pre, x = cpu_ms(clf.preprocess_image, image)
            ms = ms_jpeg + ms_pre
            jpeg_ms.append(ms_jpeg)
            ms_model, probs = cpu_ms(clf.predict, x[None])
            ms_post, _ = cpu_ms(clf.postprocess, probs)
            gate_ms.append(ms + ms_model + ms_post)
            decode_ms.append(ms)
            model_ms.append(ms_model)
            ms, preds = cpu_ms(clf.classify, [(data, w, h)])
            full_ms.append(ms)
            candidates += "reader" in preds[0].stages
    reader_ms: list[float] = []
    wrong = 0
    for data, w, h in banners:
        pred = clf.classify([(data, w, h)])[0]
        if "reader" not in pred.stages:
            wrong += 1
            continue
        assert clf.reader is not None
        for _ in range(repeat):
            ms, _ = cpu_ms(clf.reader.read, data, w, h)
            reader_ms.append(ms)
    threads = InferenceSettings.model_validate({}).reader_threads
    threaded = Classifier(model, intra_op_threads=1, warmup_batch=1, reader_threads=threads)
    confirm_cpu, confirm_wall = _confirm_costs(clf, threaded, banners, repeat)
    live = _confirm_live(clf, banners, repeat)
    live_wall = _confirm_live(threaded, banners, repeat, clock=time.perf_counter)
    arr = np.asarray
    return {
        "gameplay_frames": len(gameplay) * repeat,
        "gate_model_cpu_ms_per_frame": {"mean": round(float(arr(model_ms).mean()), 3),
                                        "p50": round(percentile(arr(model_ms), 50), 3)},
        "decode_and_crop_cpu_ms_per_frame": {"mean": round(float(arr(decode_ms).mean()), 3),
                                             "p50": round(percentile(arr(decode_ms), 50), 3),
                                             "jpeg_decode_p50": round(percentile(arr(jpeg_ms), 50), 3),
                                             "crop_resize_normalise_p50": round(
                                                 percentile(arr(decode_ms) - arr(jpeg_ms), 50), 3)},
        "gate_only_cpu_ms_per_frame": {"mean": round(float(arr(gate_ms).mean()), 3),
                                       "p50": round(percentile(arr(gate_ms), 50), 3)},
        "gate_and_reader_cpu_ms_per_frame": {"mean": round(float(arr(full_ms).mean()), 3),
                                             "p50": round(percentile(arr(full_ms), 50), 3)},
        "candidate_share_on_gameplay": round(candidates / max(1, len(full_ms)), 4),
        "reader_cpu_ms_per_candidate": {
            "p50": round(percentile(arr(reader_ms), 50), 2) if reader_ms else None,
            "p99": round(percentile(arr(reader_ms), 99), 2) if reader_ms else None,
            "banner_frames": len(banners), "banner_frames_the_gate_missed": wrong,
        },
        "confirm_per_candidate_ms": {
            "cpu_p50": round(percentile(arr(confirm_cpu), 50), 2) if confirm_cpu else None,
            "cpu_p99": round(percentile(arr(confirm_cpu), 99), 2) if confirm_cpu else None,
            "wall_p50": round(percentile(arr(confirm_wall), 50), 2) if confirm_wall else None,
            "wall_p99": round(percentile(arr(confirm_wall), 99), 2) if confirm_wall else None,
            "reader_threads": threads,
        },
        "confirm_live_ms": live,
        "confirm_live_wall_ms": {**live_wall, "reader_threads": threads},
        "note": "gate_only and gate_and_reader include the JPEG decode and preprocessing (decode_and_crop: "
                "header check, reduced JPEG decode, ROI crop, resize, normalisation); confirm_per_candidate = a fresh "
                "reading and the list check of one banner frame (the path without capture's early hint: a recording "
                "scan; live it is the banner's first frame): CPU on one thread, wall time with "
                "inference.reader_threads; confirm_live = the worker's path with the hint (see _confirm_live), "
                "CPU on one thread; confirm_live_wall = the same in wall time with inference.reader_threads (the "
                "list check's strips read side by side: shorter when a core is free, longer when other programs "
                "hold the cores)",
        "targets": {"gate_model_cpu_ms_per_frame": "<= 0.5",
                    "gate_and_reader_cpu_ms_per_frame.mean": "<= 1",
                    "reader_cpu_ms_per_candidate.p99": "<= 30",
                    "confirm_live_ms.latency_p99": "<= 30",
                    "confirm_live_wall_ms.latency_p99": "<= 30"},
    }


def _confirm_costs(one: Any, threaded: Any, banners: list[tuple[bytes, int, int]],
                   repeat: int) -> tuple[list[float], list[float]]:
    """A fresh reading plus the list check per banner frame: CPU with one reader thread (this thread's
    time is all of it) and wall time with the worker's reader threads (whose CPU this thread cannot see)."""
    from services.inference.strips import StripReader

    cpu: list[float] = []
    wall: list[float] = []
    strips = {id(one): StripReader(one.reader, 1), id(threaded): StripReader(threaded.reader, threaded.reader_threads)}
    for _ in range(repeat):
        for data, w, h in banners:
            for clf, out, clock in ((one, cpu, time.thread_time), (threaded, wall, time.perf_counter)):
                t0 = clock()
                _, image = clf.reader.read_frame(data, w, h)
                strips[id(clf)].scores(image)
                out.append((clock() - t0) * 1000.0)
    for s in strips.values():
        s.close()
    return cpu, wall


BURST_GAP_MS = 50  # a burst frame is taken at least this long after the frame before it (services/capture)


def _confirm_live(clf: Any, banners: list[tuple[bytes, int, int]], repeat: int,
                  clock: Any = time.thread_time) -> dict[str, Any]:
    """A banner confirmed on the worker's path (the reader's schedule and memory): ``clock`` is this
    thread's CPU (one reader thread: all of the work) or wall time (``inference.reader_threads``).

    The banner's first frame is read; as soon as it names an outcome the hint goes out
    (:class:`~services.inference.burst.EarlyHint`) and its list check runs while capture takes the
    confirming frame, at least :data:`BURST_GAP_MS` after the first and not before the hint; the
    confirming frame (the next banner frame) uses that list check. The confirming frame waits for
    whatever is left of the first frame's work, then is read: ``latency`` = that wait + its own CPU,
    from its arrival to its label (capture's own time ignored, so the wait is an upper bound);
    ``first_frame_to_label``: from the first frame's arrival to the confirming frame's label (a later hint
    delays the confirming frame's arrival: this one does not get shorter for it).
    """
    from services.inference.banner import BannerReader

    reader = BannerReader(clf)
    first: list[float] = []
    second: list[float] = []
    latency: list[float] = []
    lists: list[float] = []
    total: list[float] = []
    counted = 0
    for _ in range(repeat):
        for (d1, w1, h1), (d2, w2, h2) in itertools.pairwise(banners):
            reader.forget("bench")
            hinted: list[float] = []
            c0 = clock()

            def hint(c0: float = c0, out: list[float] = hinted) -> None:
                out.append((clock() - c0) * 1000.0)

            p1 = reader.classify_frame("bench", 0, d1, w1, h1, hint=hint)
            c1 = clock()
            p2 = reader.classify_frame("bench", BURST_GAP_MS, d2, w2, h2, hint=lambda: None)
            c2 = clock()
            one, two = (c1 - c0) * 1000.0, (c2 - c1) * 1000.0
            arrives = max(float(BURST_GAP_MS), hinted[0] if hinted else one)
            first.append(one)
            second.append(two)
            latency.append(max(0.0, one - arrives) + two)
            total.append(max(arrives, one) + two)
            lists.append(one - (hinted[0] if hinted else one))
            counted += p1.label == p2.label != "none"
    arr = np.asarray

    def p(values: list[float], q: float) -> float | None:
        return round(percentile(arr(values), q), 2) if values else None

    return {"pairs": len(first), "both_named_the_outcome": counted,
            "first_frame_cpu_p50": p(first, 50), "first_frame_cpu_p99": p(first, 99),
            "first_frame_after_hint_cpu_p50": p(lists, 50),
            "confirming_frame_cpu_p50": p(second, 50), "confirming_frame_cpu_p99": p(second, 99),
            "latency_p50": p(latency, 50), "latency_p99": p(latency, 99),
            "first_frame_to_label_p50": p(total, 50), "first_frame_to_label_p99": p(total, 99),
            "burst_gap_ms": BURST_GAP_MS}


def machine() -> dict[str, Any]:
    from services.inference.sessions import onnxruntime

    ort = onnxruntime()

    return common_machine(onnxruntime=ort.__version__)


def _worker_main(
    url: str,
    prefix: str,
    inference: dict[str, Any],
    cpu: int | None,
    ready: MpEvent,
    go: MpEvent,
    stop_mp: MpEvent,
    results: Connection,
) -> None:
    import cv2
    import redis

    from services.common.infra.logs import setup_logging
    from services.inference.classifier import Classifier
    from services.inference.worker import InferenceWorker

    setup_logging("WARNING")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    cv2.setNumThreads(1)
    settings = InferenceSettings.model_validate(inference)
    classifier = Classifier.from_settings(settings)
    client = redis.Redis.from_url(url, decode_responses=False)
    batches: list[tuple[float, float, int]] = []
    worker = InferenceWorker(
        client, Keys(prefix), classifier, settings, f"bench-{os.getpid()}",
        on_batch=lambda a, b, n: batches.append((a, b, n)),
    )
    worker.consumer.ensure_group()
    client.ping()
    stop = threading.Event()

    def relay() -> None:
        stop_mp.wait()
        stop.set()

    threading.Thread(target=relay, daemon=True).start()
    ready.set()
    go.wait()
    cpu0 = time.process_time()
    worker.run(stop)
    cpu_used = time.process_time() - cpu0
    results.send((batches, cpu_used, worker.banner.stats.as_dict()))
    results.close()
    client.close()


def _fill(client: Any, keys: Keys, frames: list[bytes], total: int) -> None:
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for seq in range(total):
        frame = Frame(
            # four channels at the default 250 ms interval: frame times advance like a live feed's
            channel=f"bench{seq % 4}", seq=seq, captured_at=now + (seq // 4) * 250, format="jpg",
            width=WIDTH, height=HEIGHT, image=frames[seq % len(frames)],
        )
        pipe.xadd(keys.frames, frame.to_fields())
        if len(pipe) >= 200:
            pipe.execute()
    pipe.execute()


def _remaining(client: Any, keys: Keys) -> int:
    for group in client.xinfo_groups(keys.frames):
        if group.get("name") in (GROUP_INFERENCE, GROUP_INFERENCE.encode()):
            return int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return -1


def _proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(
    url: str,
    client: Any,
    inference: InferenceSettings,
    frames: list[bytes],
    workers: int,
    total: int,
    progress: bool,
    label: str,
    server_pid: int | None = None,
) -> dict[str, Any]:
    keys = Keys(f"bench{uuid.uuid4().hex[:8]}")
    _fill(client, keys, frames, total)
    ctx = mp.get_context("spawn")
    ready = [ctx.Event() for _ in range(workers)]
    go, stop = ctx.Event(), ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
    cores = os.cpu_count() or 1
    procs = []
    for i in range(workers):
        cpu = i if workers <= cores and hasattr(os, "sched_setaffinity") else None
        p = ctx.Process(
            target=_worker_main,
            args=(url, keys.prefix, inference.model_dump(mode="json"), cpu, ready[i], go, stop, pipes[i][1]),
            daemon=True,
        )
        p.start()
        procs.append(p)
    try:
        for i, ev in enumerate(ready):
            if not ev.wait(120):
                raise RuntimeError(f"bench worker {i} did not start (exit code {procs[i].exitcode})")
        server_cpu0 = _proc_cpu_s(server_pid)
        go.set()
        deadline = time.monotonic() + max(120.0, total / 20)
        tty = sys.stderr.isatty()
        shown = 0.0
        while True:
            left = _remaining(client, keys)
            now = time.monotonic()
            if progress and (tty or left == 0 or now - shown >= 2.0):
                shown = now
                text = f"  {label}, {workers} worker(s): {total - left}/{total} frames"
                print(("\r" + text) if tty else text, end="" if tty else "\n", file=sys.stderr, flush=True)
            if left == 0:
                break
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                raise RuntimeError(f"bench run stalled with {left} frames left")
            time.sleep(0.25)
        server_cpu = _proc_cpu_s(server_pid) - server_cpu0
        if progress and tty:
            print(file=sys.stderr)
        stop.set()
        batches: list[tuple[float, float, int]] = []
        cpu_s = 0.0
        reads: dict[str, Any] = {}
        for recv, _send in pipes:
            if recv.poll(60):
                got, cpu, stats = recv.recv()
                batches += got
                cpu_s += cpu
                for k, v in stats.items():  # the reader's work: candidates, schedule reads, reuse hits
                    if isinstance(v, dict):
                        reads[k] = {kk: reads.get(k, {}).get(kk, 0) + vv for kk, vv in v.items()}
                    else:
                        reads[k] = reads.get(k, 0) + v
        for p in procs:
            p.join(30)
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    labels = int(client.xlen(keys.labels))
    handled = sum(n for _, _, n in batches)
    if not batches or handled != total or labels != total:
        raise RuntimeError(f"bench: {handled} frames handled and {labels} labels for {total} frames")
    first = min(a for a, _, _ in batches)
    last = max(b for _, b, _ in batches)
    lat = np.repeat(np.array([(b - a) * 1000.0 for a, b, _ in batches]), [n for _, _, n in batches])
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
        client.unlink(key)
    return {
        "mode": label,
        "batch_size": inference.batch_size,
        "workers": workers,
        "frames": total,
        "seconds": round(last - first, 3),
        "frames_per_second": round(total / (last - first), 1),
        "p50_ms": round(percentile(lat, 50), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "per_frame_ms": round((last - first) * 1000.0 * workers / total, 3),
        # CPU time of the worker processes (includes their idle polling at the end): what a
        # frame costs a core whatever else runs on the machine
        "worker_cpu_ms_per_frame": round(cpu_s * 1000.0 / total, 3),
        # redis-server's CPU for the run (it shares the cores with the workers)
        "redis_cpu_ms_per_frame": round(server_cpu * 1000.0 / total, 3),
        "mean_batch": round(handled / len(batches), 2),
        "reader": reads,
        "_latencies": lat,
    }


def run_bench(
    settings: Settings,
    *,
    model_given: bool,
    frames_per_worker: int,
    worker_counts: list[int],
    rounds: int = 3,
    progress: bool = True,
) -> int:
    from tools.redisproc import RedisProcess
    from tools.synthetic_model import write_synthetic_model

    inference = settings.inference
    with tempfile.TemporaryDirectory(prefix="owc-bench-") as tmp:
        tmpdir = Path(tmp)
        model_note = "shipped model" if not model_given else "model given with --model"
        if not inference.model.is_file():
            if model_given:
                print(f"owc bench: model {str(inference.model)!r} not found", file=sys.stderr)
                return 2
            # same ROI, input size and conv stack as the shipped model's design
            # (training/config.py, training/model.py), random weights
            path = write_synthetic_model(
                tmpdir / "synthetic.onnx", width=96, height=48,
                roi={"x0": 0.35, "y0": 0.31, "x1": 0.67, "y1": 0.61},
                channels=(16, 32, 32, 64, 64, 96), strides=(2, 2, 1, 2, 1, 2),
            )
            model_note = (
                f"GENERATED stand-in model (random weights; the shipped model's ROI, input size and conv stack): "
                f"{str(inference.model)!r} is not present yet"
            )
            print(f"owc bench: {model_note}", file=sys.stderr)
            inference = inference.model_copy(update={"model": path})
        inference = inference.model_copy(
            update={"max_frame_age_ms": 3_600_000, "intra_op_threads": 1, "metrics_port": 0, "worker_name": ""}
        )
        from services.inference import vision

        meta = vision.ModelMeta.load(vision.meta_path_for(inference.model))
        if progress:
            print("owc bench: generating frames…", file=sys.stderr)
        mach = machine()  # load average before the bench adds its own
        frames = make_frames()
        if progress:
            print("owc bench: detector stages on frame sequences (schedule, reuse, banner episodes)…",
                  file=sys.stderr)
        detector = None
        if meta.reader is not None:
            from tools.bench.detector import detector_figures

            detector = detector_costs(inference.model, *bench_frames())
            detector["sequences"] = detector_figures(inference.model)
        server = RedisProcess(tmpdir / "redis", appendonly=False)
        server.start()
        client = server.client()
        try:
            runs: list[dict[str, Any]] = []
            latency = inference.model_copy(update={"batch_size": 1})
            # rounds interleave the configurations so a change in the machine's other load
            # hits all of them alike; each configuration reports its median round
            for rnd in range(rounds):
                for mode, cfg in (("throughput", inference), ("latency", latency)):
                    for workers in worker_counts:
                        run = run_once(
                            server.url, client, cfg, frames, workers, frames_per_worker * workers, progress,
                            f"round {rnd + 1}/{rounds} {mode}",
                            server.proc.pid if server.proc else None,
                        )
                        run["mode"], run["round"] = mode, rnd + 1
                        runs.append(run)
            version = str(client.info("server").get("redis_version"))
        finally:
            client.close()
            server.stop()
    result: dict[str, Any] = {
        "bench": "inference",
        "model": meta.model_id,
        "model_note": model_note,
        "model_input": f"{meta.input.width}x{meta.input.height}",
        "jpeg_reduction": vision.reduction_for(WIDTH, HEIGHT, meta),
        "frame": {"width": WIDTH, "height": HEIGHT, "format": "jpg", "quality": QUALITY,
                  "mean_bytes": int(sum(map(len, frames)) / len(frames))},
        "batch_size": inference.batch_size,
        "detector": detector,
        "redis": version,
        "machine": mach,
        "rounds": rounds,
        "pinned": "worker i on core i (when there are enough cores); redis-server unpinned",
    }
    summary: list[dict[str, Any]] = []
    for mode in ("throughput", "latency"):
        for workers in worker_counts:
            mine = [r for r in runs if r["mode"] == mode and r["workers"] == workers]
            pooled = np.concatenate([r["_latencies"] for r in mine])
            fps = sorted(r["frames_per_second"] for r in mine)
            summary.append({
                "mode": mode,
                "workers": workers,
                "batch_size": mine[0]["batch_size"],
                "frames_per_second": fps[len(fps) // 2],
                "frames_per_second_all_rounds": [r["frames_per_second"] for r in mine],
                "p50_ms": round(percentile(pooled, 50), 3),
                "p99_ms": round(percentile(pooled, 99), 3),
                "worker_cpu_ms_per_frame": sorted(r["worker_cpu_ms_per_frame"] for r in mine)[len(mine) // 2],
                "redis_cpu_ms_per_frame": sorted(r["redis_cpu_ms_per_frame"] for r in mine)[len(mine) // 2],
            })
    for r in runs:
        del r["_latencies"]
    result["summary"] = summary
    result["runs"] = runs
    for workers in worker_counts:
        thr = next(r for r in summary if r["mode"] == "throughput" and r["workers"] == workers)
        lat = next(r for r in summary if r["mode"] == "latency" and r["workers"] == workers)
        result[f"workers_{workers}"] = {
            "frames_per_second": thr["frames_per_second"],
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "frames_per_second_batch_1": lat["frames_per_second"],
        }
    if "workers_1" in result:
        result.update({k: result["workers_1"][k] for k in ("frames_per_second", "p50_ms", "p99_ms")})
        if "workers_2" in result:
            result["ratio_2_vs_1"] = round(
                result["workers_2"]["frames_per_second"] / result["workers_1"]["frames_per_second"], 3
            )
            # what two workers could do with two free cores: 2 x (CPU per frame alone / CPU per frame
            # side by side); independent of other load on the machine, unlike the wall-clock ratio
            thr1, thr2 = (
                next(r for r in summary if r["mode"] == "throughput" and r["workers"] == w) for w in (1, 2)
            )
            result["ratio_2_vs_1_cpu_capacity"] = round(
                2 * thr1["worker_cpu_ms_per_frame"] / thr2["worker_cpu_ms_per_frame"], 3
            )
            result["ratio_2_vs_1_batch_1"] = round(
                result["workers_2"]["frames_per_second_batch_1"] / result["workers_1"]["frames_per_second_batch_1"], 3
            )
    result["targets"] = {"frames_per_second": ">= 300", "p50_ms": "<= 3", "ratio_2_vs_1": ">= 1.7"}
    print(json.dumps(result, indent=2))
    return 0
