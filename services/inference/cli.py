"""``owc inference``, ``owc predict`` and ``owc bench inference``."""

from __future__ import annotations

import argparse

from services.common.cliargs import add_config_args, connect_redis, fail, load_from_args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "inference",
        help="run an inference worker (classifies frames from Redis; run several to scale)",
        description="Consume owc:frames in the consumer group 'inference' and publish labels. "
        "Start several workers (processes or machines) to scale: Redis shares the frames.",
    )
    p.add_argument("--model", metavar="PATH", help="ONNX model (default: inference.model)")
    p.add_argument("--name", metavar="NAME", help="consumer name (default: inference.worker_name or host-pid)")
    add_config_args(p)
    p.set_defaults(handler=_run_inference)

    q = sub.add_parser(
        "predict",
        help="classify image files with the model (same preprocessing as the workers)",
        description="Classify PNG/JPEG files of any resolution with the same preprocessing and "
        "model as the inference workers. Exit status 2 if a file cannot be read.",
    )
    q.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG or JPEG)")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.add_argument(
        "--explain", action="store_true",
        help="also print each stage's scores: the gate's score and threshold, and for candidates the "
        "reader's score per word, its own spelling and the acceptance level",
    )
    q.add_argument("--model", metavar="PATH", help="ONNX model (default: inference.model)")
    add_config_args(q)
    q.set_defaults(handler=_run_predict)


def register_bench(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = bench_sub.add_parser(
        "inference",
        help="frames/s and per-frame latency of the real worker against a real redis-server",
        description="Starts its own redis-server, fills a stream with generated 640x360 JPEG "
        "frames and runs the real worker code with 1, then 2 worker processes. Prints JSON.",
    )
    b.add_argument("--model", metavar="PATH", help="ONNX model (default: the shipped model if present)")
    b.add_argument("--frames", type=int, default=2000, help="frames per worker in each run (default 2000)")
    b.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    b.add_argument("--batch-size", type=int, default=None, help="frames per XREADGROUP (default: inference.batch_size)")
    b.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated (default 1,2)")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_config_args(b)
    b.set_defaults(handler=_run_bench)


def _run_inference(args: argparse.Namespace) -> int:
    import threading

    import cv2

    from services.common.lifecycle import stop_on_signals
    from services.common.metrics import serve_metrics
    from services.common.redisio import keys_for
    from services.inference.classifier import Classifier, ClassifierError
    from services.inference.worker import InferenceWorker

    loaded = load_from_args(args, {"inference.model": args.model, "inference.worker_name": args.name})
    settings = loaded.settings
    # one core per worker: scale with processes, not with threads inside one
    cv2.setNumThreads(1)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        classifier = Classifier.from_settings(settings.inference)
    except ClassifierError as exc:
        fail(str(exc))
    serve_metrics(settings.metrics.host, settings.inference.metrics_port, "inference")
    client = connect_redis(settings, 30.0)
    worker = InferenceWorker(client, keys_for(settings), classifier, settings.inference)
    worker.run(stop)
    client.close()
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from services.inference.predict import predict_files

    loaded = load_from_args(args, {"inference.model": args.model})
    return predict_files(loaded.settings.inference, args.images, as_json=args.json, explain=args.explain)


def _run_bench(args: argparse.Namespace) -> int:
    from services.inference.bench import run_bench

    loaded = load_from_args(args, {"inference.model": args.model, "inference.batch_size": args.batch_size})
    try:
        counts = [int(x) for x in args.workers.split(",") if x.strip()]
    except ValueError:
        fail(f"--workers expects comma-separated numbers, got {args.workers!r}")
    if not counts or min(counts) < 1:
        fail("--workers needs at least one positive number")
    if args.frames < 100:
        fail("--frames must be at least 100")
    if args.rounds < 1:
        fail("--rounds must be at least 1")
    return run_bench(
        loaded.settings,
        model_given=args.model is not None,
        frames_per_worker=args.frames,
        worker_counts=counts,
        rounds=args.rounds,
        progress=not args.quiet,
    )
