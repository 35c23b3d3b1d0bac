"""``owc bench e2e|resources|capture|inference|gateway``: the parsers, light to build.

Each bench module is imported only when its command runs, so ``owc --help`` stays fast.
"""

from __future__ import annotations

import argparse

from services.common.cli.cliargs import add_config_args, fail, load_from_args


def register_bench(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e2e = bench_sub.add_parser(
        "e2e", help="banner on screen -> SSE event in a browser, p50/p95 ms (whole stack, replay)"
    )
    add_config_args(e2e)
    e2e.add_argument("--matches", type=int, default=8, help="banners in the replay (default 8)")
    e2e.add_argument(
        "--with-actions", action="store_true",
        help="run it twice, without and with a webhook action to a slow local receiver, and compare p50/p95",
    )
    e2e.add_argument("--webhook-delay", type=float, default=2.0, metavar="S",
                     help="--with-actions: seconds the receiver takes to answer each request (default 2)")
    e2e.add_argument("--rounds", type=int, default=1,
                     help="--with-actions, --burst-compare: pairs of runs, alternating which goes first (default 1)")
    e2e.add_argument("--burst-compare", action="store_true",
                     help="run it with capture.burst on and off, alternating, and compare p50/p95 and the hops")
    e2e.set_defaults(handler=_bench_e2e)
    res = bench_sub.add_parser(
        "resources",
        help="CPU%%, RSS and PSS of every process of `owc run`, one process and --processes side by side",
    )
    add_config_args(res)
    res.add_argument("--seconds", type=float, default=60.0, help="measurement time (default 60)")
    res.add_argument("--warmup", type=float, default=10.0, help="seconds ignored at start (default 10)")
    res.add_argument("--mode", choices=["both", "one-process", "processes"], default="both",
                     help="which `owc run` to measure (default both, side by side in one run)")
    res.add_argument("--no-obs-seconds", type=float, default=20.0,
                     help="then the one-process stack with no OBS running, this long (0: skip; default 20)")
    res.set_defaults(handler=_bench_resources)

    p = bench_sub.add_parser(
        "capture",
        help="OBS screenshot cost: PNG 1920x1080 vs the capture defaults",
        description="Measure GetSourceScreenshot round trips and bytes against a real OBS. "
        "Without --obs-host, starts a headless OBS (Xvfb, software GL) with a test scene.",
    )
    p.add_argument("--obs-host", help="use this running OBS instead of starting one")
    p.add_argument("--obs-port", type=int, default=None, help="its obs-websocket port (obs.port)")
    p.add_argument("--obs-password", default=None, help="its password (obs.password)")
    p.add_argument("--source", default=None, help="source to capture (obs.source; empty: program scene)")
    p.add_argument("--requests", type=int, default=10, help="round trips per configuration (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured round trips first (default 2)")
    p.add_argument("--media", default=None, help="picture shown by the started OBS (default: a busy 1080p one)")
    add_config_args(p)
    p.set_defaults(handler=_bench_capture)

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
    b.set_defaults(handler=_bench_inference)

    g = bench_sub.add_parser(
        "gateway",
        help="SSE fan-out latency with many clients, and status requests per second",
        description="Start a private redis-server, `owc state` and `owc gateway`, connect N SSE clients, "
        "send commands and measure event-log append -> every client received (p50/p99), then status req/s.",
    )
    g.add_argument("--clients", type=int, default=200, help="SSE clients (default 200)")
    g.add_argument("--events", type=int, default=100, help="events to time (default 100)")
    g.add_argument("--status-seconds", type=float, default=5.0, help="duration of the status test")
    g.add_argument("--concurrency", type=int, default=16, help="parallel status requests")
    g.add_argument("--json", dest="json_out", metavar="PATH", help="also write the results as JSON")
    g.set_defaults(handler=_bench_gateway)


def _bench_e2e(args: argparse.Namespace) -> int:
    if args.burst_compare:
        from tools.bench.burst_compare import bench_burst_compare

        return bench_burst_compare(args)
    from tools.bench.stack import bench_e2e

    return bench_e2e(args)


def _bench_resources(args: argparse.Namespace) -> int:
    from tools.bench.resources import bench_resources

    return bench_resources(args)


def _bench_capture(args: argparse.Namespace) -> int:
    loaded = load_from_args(
        args,
        {
            "obs.host": args.obs_host,
            "obs.port": args.obs_port,
            "obs.password": args.obs_password,
            "obs.source": args.source,
        },
    )
    from tools.bench.capture import bench_capture

    return bench_capture(
        loaded.settings,
        start_obs=args.obs_host is None,
        requests=max(1, args.requests),
        warmup=max(0, args.warmup),
        media=args.media,
    )


def _bench_inference(args: argparse.Namespace) -> int:
    from tools.bench.inference import run_bench

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


def _bench_gateway(args: argparse.Namespace) -> int:
    from tools.bench.gateway import main

    return main(args)
