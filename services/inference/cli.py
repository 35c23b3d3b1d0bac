"""``owc inference`` and ``owc predict``."""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING

from services.common.cli.cliargs import add_command, add_config_args, fail, load_from_args, redis_for

if TYPE_CHECKING:
    from services.common.config.settings import Settings
    from services.inference.classifier import Classifier


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
    from services.common.infra.lifecycle import stop_on_signals
    from services.common.infra.metrics import serve_metrics
    from services.inference.classifier import ClassifierError

    loaded = load_from_args(args, {"inference.model": args.model, "inference.worker_name": args.name})
    settings = loaded.settings
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        classifier = load_classifier(settings)
    except ClassifierError as exc:
        fail(str(exc))
    serve_metrics(settings.metrics.host, settings.inference.metrics_port, "inference")
    serve_inference(settings, stop, classifier)
    return 0


def load_classifier(settings: Settings) -> Classifier:
    """The worker's model (:class:`ClassifierError` says why it cannot load). OpenCV gets one thread:
    a worker uses one core; scale with more workers (threads in one process, processes, machines)."""
    import cv2

    from services.inference.classifier import Classifier

    cv2.setNumThreads(1)
    return Classifier.from_settings(settings.inference)


def serve_inference(settings: Settings, stop: threading.Event, classifier: Classifier, name: str | None = None) -> None:
    """Classify frames until ``stop``: the service's body (its own process, or a thread of `owc run`)."""
    from services.inference.worker import InferenceWorker

    client, keys = redis_for(settings, 30.0)
    try:
        InferenceWorker(client, keys, classifier, settings.inference, name).run(stop)
    finally:
        client.close()


def _run_predict(args: argparse.Namespace) -> int:
    from services.inference.predict import predict_files

    loaded = load_from_args(args, {"inference.model": args.model})
    return predict_files(loaded.settings.inference, args.images, as_json=args.json, explain=args.explain)
