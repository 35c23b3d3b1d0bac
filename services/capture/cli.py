"""``owc capture``."""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING

from services.common.cli.cliargs import add_command, fail, load_from_args, redis_for

if TYPE_CHECKING:
    from services.capture.metrics import CaptureMetrics
    from services.common.config.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(sub, "capture", run_capture, help="publish frames from OBS (obs-websocket 5) or a replay to Redis")
    p.add_argument("--channel", help="channel this capture feeds (capture.channel)")
    p.add_argument("--source", metavar="obs|replay:PATH", help="frame source (capture.source)")
    p.add_argument("--fps", type=float, help="replay: frames per second of replay time (capture.fps)")
    p.add_argument("--speed", type=float, help="replay: wall-clock speed-up (capture.speed)")
    p.add_argument(
        "--loop", action=argparse.BooleanOptionalAction, default=None, help="replay: start again at the end"
    )
    p.add_argument(
        "--from-start",
        action="store_true",
        help="replay: start at the first frame even if an interrupted replay of this path could be resumed",
    )
    p.add_argument("--max-messages", type=int, default=None, help=argparse.SUPPRESS)


def run_capture(args: argparse.Namespace) -> int:
    """Capture frames for one channel: from OBS over obs-websocket 5 (default), or replay a folder of
    images / a video file (--source replay:PATH).
    """
    loaded = load_from_args(
        args,
        {
            "capture.channel": args.channel,
            "capture.source": args.source,
            "capture.fps": args.fps,
            "capture.speed": args.speed,
            "capture.loop": args.loop,
        },
    )
    settings = loaded.settings

    from services.capture.metrics import CaptureMetrics
    from services.capture.replay import ReplayError
    from services.common.infra.lifecycle import stop_on_signals
    from services.common.infra.metrics import serve_metrics

    try:
        check_source(settings)
    except ReplayError as exc:
        fail(str(exc))
    stop = threading.Event()
    stop_on_signals(stop)
    metrics = CaptureMetrics()
    serve_metrics(settings.metrics.host, settings.capture.metrics_port, "capture")
    try:
        serve_capture(settings, stop, metrics, from_start=args.from_start, max_messages=args.max_messages)
    except ReplayError as exc:
        fail(str(exc), 1)
    return 0


def check_source(settings: Settings) -> None:
    """A replay source must name a readable folder or video (:class:`ReplayError` says why not)."""
    from services.capture.replay import check_replay_path, parse_replay_source

    replay_path = parse_replay_source(settings.capture.source)
    if replay_path is not None:
        check_replay_path(replay_path)


def serve_capture(
    settings: Settings,
    stop: threading.Event,
    metrics: CaptureMetrics,
    *,
    from_start: bool = False,
    max_messages: int | None = None,
) -> None:
    """Capture until ``stop`` (a replay that does not loop returns at its end). The service's body:
    ``owc capture`` runs it in its own process, ``owc run`` in a thread of the one process."""
    from services.capture.replay import ReplaySource, parse_replay_source

    replay_path = parse_replay_source(settings.capture.source)
    # the source's loop is the client's only user (the burst hints' subscription takes its own connection):
    # one connection kept, no pool checkout a command
    client, keys = redis_for(settings, 30.0, one_thread=True)
    try:
        if replay_path is not None:
            ReplaySource(replay_path, settings.capture, client, keys, metrics, resume=not from_start).run(
                stop, max_messages=max_messages
            )
            return
        from services.capture.obs_source import ObsSource

        ObsSource(settings.obs, settings.capture, client, keys, metrics).run(stop, max_messages=max_messages)
    finally:
        client.close()
