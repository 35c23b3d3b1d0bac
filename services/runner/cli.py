"""``owc run``: the whole stack on one PC, without Docker."""

from __future__ import annotations

import argparse

from services.common.cli.cliargs import add_command, load_from_args, passthrough_args, set_args
from services.runner.demo import add_demo_parser
from services.runner.stack import run_stack


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_command(sub, "run", _run, help="start Redis (embedded unless redis.url is set) and all services")
    run.add_argument("--workers", type=int, help="inference workers (default: run.workers = 1)")
    run.add_argument("--source", help="capture source: obs (default) or replay:PATH")
    run.add_argument("--fps", type=float, help="replay frames per second")
    run.add_argument("--speed", type=float, help="replay speed-up")
    run.add_argument("--loop", action="store_true", default=None, help="loop the replay")
    run.add_argument("--channel", help="channel name (default: default)")
    run.add_argument(
        "--processes", action="store_true",
        help="one process per service under a supervisor (default: every service as a thread of one process)",
    )
    add_demo_parser(sub)


def run_flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        "run.workers": args.workers,
        "capture.source": args.source,
        "capture.fps": args.fps,
        "capture.speed": args.speed,
        "capture.loop": args.loop,
        "capture.channel": args.channel,
    }


def _run(args: argparse.Namespace) -> int:
    """Start the whole stack: an embedded redis-server (unless redis.url is set), capture, inference
    worker(s), state, gateway and actions, with prefixed logs. By default the services are threads of
    one process (restarted if it dies); --processes runs one process per service. Ctrl+C stops everything.
    """
    flags = run_flags(args)
    loaded = load_from_args(args, flags)
    if args.processes:
        service_flags = {k: v for k, v in flags.items() if not k.startswith("run.")}
        return run_stack(loaded, passthrough_args(args) + set_args(service_flags), processes=True, keeper=True)
    # the stack process reads run.workers too
    return run_stack(loaded, passthrough_args(args) + set_args(flags), keeper=True)
