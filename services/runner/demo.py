"""``owc demo``: the whole stack counting the bundled replay, no OBS needed.

The demo always starts from nothing: its own embedded Redis in a temporary
directory and its own key prefix, so it never touches a streamer's real counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.cli.cliargs import add_command, fail, load_from_args, passthrough_args, set_args
from services.common.infra.ports import free_port, port_free
from services.runner.stack import run_stack

if TYPE_CHECKING:
    import redis

    from services.common.contracts.keys import Keys
    from services.runner.host import ServiceHost
    from services.runner.supervisor import Supervisor

log = logging.getLogger("owc.demo")


def add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = add_command(sub, "demo", run_demo, help="watch the stack count a bundled replay (no OBS needed)")
    demo.add_argument("--once", action="store_true", help="replay once, check the result, stop")
    demo.add_argument("--speed", type=float, default=None, help="replay speed-up (default 1; --once: 4)")
    demo.add_argument("--loop", action="store_true", help="keep replaying the clip (not with --once)")
    demo.add_argument("--timeout", type=float, default=180.0, help="--once: give up after this many seconds")
    demo.add_argument("--processes", action="store_true",
                      help="one process per service (default: every service as a thread of this process)")


def _stream_idle(client: redis.Redis, stream: str, group: str) -> bool:
    """True when the group has read and acked everything in the stream."""
    from services.common.infra.streams import group_backlog

    try:
        backlog = group_backlog(client, stream, group, limit=1)
    except Exception:
        return False
    return backlog.exists and backlog.total == 0


def _settled(client: redis.Redis, keys: Keys) -> bool:
    from services.common.contracts.keys import GROUP_INFERENCE, GROUP_STATE

    return _stream_idle(client, keys.frames, GROUP_INFERENCE) and _stream_idle(client, keys.labels, GROUP_STATE)


ACTIONS_WAIT_S = 30.0


def _wait_for_actions(client: redis.Redis, keys: Keys, stop: threading.Event) -> str:
    """Before exiting, let the actions service deliver what the clip's events asked for (bounded),
    so `owc demo --once --config owc.toml` with a webhook is a quick way to try one."""
    from services.actions.worker import caught_up

    deadline = time.monotonic() + ACTIONS_WAIT_S
    while time.monotonic() < deadline and not stop.is_set():
        if caught_up(client, keys, "default"):
            return "delivered"
        time.sleep(0.2)
    log.warning("the actions service did not finish the clip's events within %.0f s", ACTIONS_WAIT_S)
    return f"not finished within {ACTIONS_WAIT_S:.0f} s"


def _status(port: int, channel: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/channels/{channel}/status"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def run_demo(args: argparse.Namespace) -> int:
    """Start the whole stack on the bundled demo clip (a generated match ending with a VICTORY! banner) and
    print the overlay and admin URLs. --once replays the clip once, prints the final status as JSON
    and exits 0 only if the counts equal the clip's known result.
    """
    if args.once and args.loop:
        fail("--once and --loop cannot be combined")
    try:  # the clip's generator is training's (synthetic frames); the Docker image ships services/ only
        from training.demo_clip import DEMO_RESULT, FPS, ensure_demo_clip
    except ModuleNotFoundError as exc:
        if exc.name not in ("training", "training.demo_clip"):
            raise
        fail(
            "the demo needs the `training` package, which generates its clip, and it is not installed here "
            "(the Docker image ships only the services). Run it from a checkout of the project: `make demo` "
            "(or `make setup`, then `.venv/bin/owc demo`). In Docker, `docker compose up -d` runs the real "
            "stack for your OBS instead."
        )

    clip = ensure_demo_clip()
    workdir = Path(tempfile.mkdtemp(prefix="owc-demo-"))
    speed = args.speed if args.speed is not None else (4.0 if args.once else 1.0)
    flags: dict[str, Any] = {
        "capture.source": f"replay:{clip}",
        "capture.fps": FPS,
        "capture.speed": speed,
        "capture.loop": bool(args.loop),
        "capture.channel": "default",
    }
    loaded = load_from_args(args, flags)
    settings = loaded.settings
    overrides: dict[str, Any] = dict(flags)
    if not settings.redis.url:
        overrides["redis.data_dir"] = str(workdir / "data")
        if loaded.sources.get("redis.embedded_port") == "default":
            overrides["redis.embedded_port"] = 0  # any free port: never clash with `owc run`
    overrides["redis.prefix"] = f"owcdemo{int(time.time())}"
    # never clash with a running `owc run`: no metrics ports, and port 3000 only if it is free
    if args.processes:  # one process: no metrics port but the gateway's
        overrides.update({"capture.metrics_port": 0, "inference.metrics_port": 0, "state.metrics_port": 0,
                          "actions.metrics_port": 0})
    if loaded.sources.get("gateway.port") == "default" and not port_free(settings.gateway.host, settings.gateway.port):
        overrides["gateway.port"] = free_port(settings.gateway.host)
    loaded = load_from_args(args, overrides)
    settings = loaded.settings
    passthrough = passthrough_args(args) + set_args(overrides)

    from services.actions.cli import action_names
    from services.common.infra.redisio import keys_for

    result: dict[str, Any] = {"ok": False}
    stop = threading.Event()

    def watch(sup: ServiceHost | Supervisor, url: str) -> None:
        import redis as redis_lib

        keys = keys_for(settings)
        client = redis_lib.Redis.from_url(url)
        deadline = time.monotonic() + args.timeout
        try:
            while not stop.is_set():
                if time.monotonic() > deadline:
                    result["error"] = f"the pipeline did not settle within {args.timeout:.0f}s"
                    break
                if not sup.running("capture") and _settled(client, keys):
                    # the state service may still hold the last labels in its reorder window
                    time.sleep(settings.state.reorder_window_ms / 1000 + 0.5)
                    if _settled(client, keys):
                        status = _status(settings.gateway.port, "default")
                        counts = {k: status[k] for k in DEMO_RESULT}
                        result.update(status=status, counts=counts, ok=counts == DEMO_RESULT)
                        result["actions"] = (_wait_for_actions(client, keys, stop) if action_names(settings)
                                             else "none configured")
                        break
                time.sleep(0.25)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
            stop.set()

    def summary(_sup: ServiceHost | Supervisor, _url: str) -> None:
        """Without --once: say when the clip's match was counted, and how to go on or stop."""
        base = f"http://127.0.0.1:{settings.gateway.port}"
        deadline = time.monotonic() + args.timeout
        while not stop.wait(1.0) and time.monotonic() < deadline:
            try:
                status = _status(settings.gateway.port, "default")
            except (OSError, ValueError):
                continue
            if all(status[k] >= v for k, v in DEMO_RESULT.items()) and status["total"]:
                log.info(
                    "the demo counted its match: %d W / %d L / %d D. Overlay %s/overlay, admin %s/admin "
                    "(try +1, undo, the designer).%s Ctrl+C to stop.",
                    status["victories"], status["defeats"], status["draws"], base, base,
                    " The clip replays after the cooldown and a run of plain frames." if args.loop else "",
                )
                return

    log.info("demo clip: %s (%s fps, speed %sx); expected result %s", clip, FPS, speed, DEMO_RESULT)
    try:
        if args.once:
            run_stack(loaded, passthrough, stop=stop, on_started=watch, processes=args.processes)
        else:
            run_stack(loaded, passthrough, stop=stop, on_started=summary, processes=args.processes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not args.once:
        return 0
    print(json.dumps({"expected": DEMO_RESULT, **result}, indent=2, default=str))
    if not result.get("ok"):
        print(
            f"owc demo: expected {DEMO_RESULT}, got {result.get('counts')}"
            + (f" ({result['error']})" if "error" in result else ""),
            file=sys.stderr,
        )
        return 1
    return 0
