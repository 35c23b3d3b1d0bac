"""A live worker's CPU per frame, by stage: the demo loop replayed at its own pace through the real
:class:`~services.inference.worker.InferenceWorker` and a real redis-server (issue 22).

``owc bench inference`` times the stages in a hot loop and the worker on a backlog; a live worker sees one
frame every 250 ms, between which other programs evict the caches (the same JPEG decode and gate cost about
twice their hot-loop time), and spends its time on Redis round trips, the schedule's bookkeeping and a
banner's readings too. This replays the looping demo clip at ``--fps`` (default 4, capture's rate) into
``owc:frames`` and measures the worker's own thread CPU (``time.thread_time``) per frame and per stage:
the blocking read, decode, preprocessing, gate, the banner reader (schedule, readings, list check), the
commit, housekeeping — on gameplay frames and on banner frames apart.

    python -m tools.bench.live_inference [--frames 240] [--fps 4] [--cooldown] [TREE ...]

Each TREE (a source checkout; default this one) runs in its own process, in the order given (alternate
two trees for an A/B: ``base new base new``), against one redis-server; the labels of every run are
compared frame by frame. ``--cooldown`` writes the channel's state snapshot as the state service would
after the clip's banner is counted (``phase`` cooldown, ``cooldown_until`` 180 s later, at the banner's
sixth frame), so the later loops run as a live channel does after a count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("poll", "decode", "pre", "gate", "banner", "commit", "house")
COOLDOWN_AT = 45  # the clip's banner is frames 40..59 (training.demo_clip)


def _child(tree: str, url: str, prefix: str, out: str) -> None:
    """One worker in this process, its stages timed; writes its figures and labels to ``out``."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [tree, *(p for p in sys.path if p != here)]
    os.chdir(tree)
    import cv2
    import redis

    import services.inference.worker as wmod
    from services.common.config.settings import InferenceSettings
    from services.common.contracts.keys import Keys
    from services.inference import group as gmod
    from services.inference.classifier import Classifier

    assert wmod.__file__ is not None and wmod.__file__.startswith(tree), wmod.__file__
    cv2.setNumThreads(1)
    settings = InferenceSettings.model_validate({"intra_op_threads": 1, "metrics_port": 0, "batch_size": 8,
                                                 "model": str(Path(tree) / "models/victory_classifier.onnx")})
    client = redis.Redis.from_url(url)
    worker = wmod.InferenceWorker(client, Keys(prefix), Classifier.from_settings(settings), settings, "live")
    per: list[dict[str, Any]] = []
    cur: dict[str, float] = {}

    def timed(obj: Any, name: str, stage: str) -> None:
        fn: Callable[..., Any] = getattr(obj, name)

        def inner(*a: Any, **k: Any) -> Any:
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                cur[stage] = cur.get(stage, 0.0) + time.thread_time() - t

        setattr(obj, name, inner)

    clf = worker.classifier
    for obj, name, stage in ((clf, "decode", "decode"), (clf, "preprocess_image", "pre"), (clf, "predict", "gate"),
                             (worker.banner, "frame", "banner"), (gmod, "commit", "commit"),
                             (worker.poller, "poll", "poll"), (worker, "_housekeeping", "house")):
        timed(obj, name, stage)
    handle = worker.handle

    def handled(deliveries: list[Any]) -> None:
        t, pt = time.thread_time(), time.process_time()
        handle(deliveries)
        per.append({"seqs": [int(d.fields[b"seq"]) for d in deliveries], "handle": time.thread_time() - t,
                    "process": time.process_time() - pt,
                    **{k: v for k, v in cur.items() if k not in ("poll", "house")}})
        for k in list(cur):
            if k not in ("poll", "house"):
                del cur[k]

    worker.handle = handled  # type: ignore[method-assign]
    worker.consumer.ensure_group()
    stop = threading.Event()
    res: dict[str, Any] = {}

    def body() -> None:
        client.set(f"{prefix}:ready", 1)
        while not client.get(f"{prefix}:go"):
            time.sleep(0.05)
        t0, p0 = time.thread_time(), time.process_time()
        cur.clear()
        worker.run(stop)
        res["thread_s"] = time.thread_time() - t0
        res["process_s"] = time.process_time() - p0  # with the reader's threads (list check, wider crop)
        res["poll_s"], res["house_s"] = cur.get("poll", 0.0), cur.get("house", 0.0)

    th = threading.Thread(target=body)
    th.start()
    while not client.get(f"{prefix}:done"):
        time.sleep(0.2)
    stop.set()
    th.join()
    res["per"] = per
    kept = list(client.scan_iter(match=f"{prefix}:detframe:*", count=500))
    res["detframes"] = [len(kept), sum(int(client.strlen(k)) for k in kept)]
    res["stats"] = worker.banner.stats.as_dict()
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(f"{prefix}:labels")  # type: ignore[assignment]
    res["labels"] = [(int(f[b"seq"]), f[b"label"].decode(), f[b"confidence"].decode(),
                      (f.get(b"read") or b"").decode(), (f.get(b"score") or b"").decode()) for _id, f in entries]
    Path(out).write_text(json.dumps(res))


def _summary(tree: str, n: int, r: dict[str, Any], banner_frames: range) -> dict[str, Any]:
    per = r["per"]

    def part(banner: bool) -> dict[str, float]:
        rows = [p for p in per if any((s % 120 in banner_frames) == banner for s in p["seqs"])]
        frames = sum(len(p["seqs"]) for p in rows)
        out = {k: round(sum(p.get(k, 0.0) for p in rows) * 1000 / max(frames, 1), 3)
               for k in ("handle", "process", "decode", "pre", "gate", "banner", "commit")}
        out["frames"] = frames
        return out

    stages = {k: round(sum(p.get(k, 0.0) for p in per) * 1000 / n, 3) for k in ("decode", "pre", "gate", "banner",
                                                                                 "commit")}
    stages["handle_rest"] = round(sum(p["handle"] for p in per) * 1000 / n - sum(stages.values()), 3)
    stages["poll"] = round(r["poll_s"] * 1000 / n, 3)
    stages["house"] = round(r["house_s"] * 1000 / n, 3)
    readings = [(p["seqs"][0], round(p.get("banner", 0.0) * 1000, 1), round(p.get("process", 0.0) * 1000, 1))
                for p in per if p.get("banner", 0.0) > 0.005]
    return {"tree": tree, "labels": len(r["labels"]), "thread_cpu_ms_per_frame": round(r["thread_s"] * 1000 / n, 3),
            # the whole process: the worker thread and the reader's threads (and the idle metrics server)
            "process_cpu_ms_per_frame": round(r.get("process_s", 0.0) * 1000 / n, 3),
            "stage_cpu_ms_per_frame": stages, "gameplay_frames": part(False), "banner_frames": part(True),
            "reader": r["stats"], "frames_over_5ms_in_the_reader": readings,
            "detection_frames_kept": {"frames": r["detframes"][0], "bytes": r["detframes"][1]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.live_inference", description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="*", default=[str(ROOT)], help="source checkouts, run in this order")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--fps", type=float, default=4.0)
    ap.add_argument("--cooldown", action="store_true", help="the state's cooldown after the first banner's count")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    sys.path.insert(0, str(ROOT))
    from services.common.contracts.messages import Frame
    from tools.redisproc import RedisProcess
    from training.demo_clip import BANNER_FRAMES, BANNER_START, FRAME_COUNT, ensure_demo_clip

    assert FRAME_COUNT == 120
    clip = [p.read_bytes() for p in sorted(ensure_demo_clip().glob("frame_*.jpg"))]
    banner = range(BANNER_START, BANNER_START + BANNER_FRAMES)
    print(json.dumps({"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    runs: list[tuple[str, list[Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp) / "redis", appendonly=False)
        server.start()
        client = server.client()
        try:
            for tree in args.trees:
                tree = str(Path(tree).resolve())
                prefix = f"live{uuid.uuid4().hex[:6]}"
                out = Path(tmp) / f"{prefix}.json"
                # this file runs the child (a base checkout may not have it), with the tree's code first
                proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", tree,
                                         server.url, prefix, str(out)], cwd=tree)
                while not client.get(f"{prefix}:ready"):
                    if proc.poll() is not None:
                        raise SystemExit(f"the worker for {tree} exited with {proc.returncode}")
                    time.sleep(0.1)
                time.sleep(1.0)
                client.set(f"{prefix}:go", 1)
                start = time.time()
                for i in range(args.frames):
                    time.sleep(max(0.0, start + i / args.fps - time.time()))
                    at = int(start * 1000) + i * 250
                    frame = Frame(channel="main", seq=i, captured_at=at, format="jpg", width=640, height=360,
                                  image=clip[i % len(clip)])
                    client.xadd(f"{prefix}:frames", frame.to_fields())  # type: ignore[arg-type]
                    if args.cooldown and i == COOLDOWN_AT:
                        client.hset(f"{prefix}:state:main", mapping={"phase": "cooldown",
                                                                     "cooldown_until": at + 180_000})
                time.sleep(1.0)
                client.set(f"{prefix}:done", 1)
                proc.wait()
                r = json.loads(out.read_text())
                print(json.dumps(_summary(tree, args.frames, r, banner)), flush=True)
                runs.append((tree, r["labels"]))
        finally:
            server.stop()
    first = runs[0][1]
    for tree, labels in runs[1:]:
        diff = [a[0] for a, b in zip(first, labels, strict=False) if a != b]
        print(json.dumps({"tree": tree, "labels_differing_from_the_first_run": diff}), flush=True)
    print(json.dumps({"load_average_at_end": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
