"""``owc inference`` and ``owc predict``."""

from __future__ import annotations

import argparse

from services.common.cliargs import add_command, add_config_args, fail, load_from_args, redis_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, "inference", _run_inference,
        help="run an inference worker (classifies frames from Redis; run several to scale)",
    )
    p.add_argument("--model", metavar="PATH", help="ONNX model (default: inference.model)")
    p.add_argument("--name", metavar="NAME", help="consumer name (default: inference.worker_name or host-pid)")

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


def _run_inference(args: argparse.Namespace) -> int:
    """Consume owc:frames in the consumer group 'inference' and publish labels. Start several workers
    (processes or machines) to scale: Redis shares the frames.
    """
    import threading

    import cv2

    from services.common.lifecycle import stop_on_signals
    from services.common.metrics import serve_metrics
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
    client, keys = redis_for(settings, 30.0)
    worker = InferenceWorker(client, keys, classifier, settings.inference)
    worker.run(stop)
    client.close()
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from services.inference.predict import predict_files

    loaded = load_from_args(args, {"inference.model": args.model})
    return predict_files(loaded.settings.inference, args.images, as_json=args.json, explain=args.explain)
