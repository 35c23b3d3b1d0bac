"""``owc gateway`` (HTTP server)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.cli.cliargs import add_config_args, fail, load_from_args

if TYPE_CHECKING:
    from services.common.config.settings import Settings


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "gateway",
        help="serve the REST API, live events, the OBS overlay and the admin page",
        description="Serve the HTTP gateway (default http://127.0.0.1:3000: /overlay, /admin, /docs).",
    )
    parser.add_argument("--host", help="bind address (gateway.host, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (gateway.port, default 3000)")
    add_config_args(parser)
    parser.set_defaults(handler=run_gateway)


def run_gateway(args: argparse.Namespace) -> int:
    loaded = load_from_args(args, {"gateway.host": args.host, "gateway.port": args.port})
    from services.common.infra.ports import PreflightError, check_gateway_port

    try:
        check_gateway_port(loaded.settings.gateway.host, loaded.settings.gateway.port)
    except PreflightError as exc:
        fail(str(exc))
    return serve_gateway(loaded.settings, loaded.config_dir)


def serve_gateway(settings: Settings, config_dir: Path, stop: threading.Event | None = None) -> int:
    """Serve HTTP until a signal (its own process: ``stop`` None) or until ``stop`` is set (a thread
    of `owc run`, where its /metrics carries every service's metrics: one registry per process)."""
    import asyncio
    import logging

    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.server import QuietServer

    app = create_app(settings, config_dir)
    log = logging.getLogger("owc.gateway")
    config = uvicorn.Config(
        app,
        host=settings.gateway.host,
        port=settings.gateway.port,
        log_config=None,  # keep our logging setup
        access_log=False,  # URLs may carry the admin token (?token=): never log them
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        server_header=False,
        ws="none",  # no route is a websocket: uvicorn's websocket protocol not loaded (~0.7 MB)
    )

    def close_streams() -> None:
        # End the open SSE streams first, or the graceful shutdown would wait for them.
        runtime = getattr(app.state, "runtime", None)
        if runtime is not None:
            try:
                asyncio.get_running_loop().call_soon_threadsafe(runtime.hubs.close_all)
            except RuntimeError:
                runtime.hubs.close_all()

    server = QuietServer(config, stop, close_streams)
    log.info(
        "gateway on http://%s:%d (overlay /overlay, admin /admin, API /docs); config dir %s",
        settings.gateway.host,
        settings.gateway.port,
        config_dir,
    )
    try:
        server.run()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.gateway.host, settings.gateway.port, exc.strerror)
        return 1
    finally:
        server.should_exit = True
    return 0 if server.started or server.should_exit else 1
