"""``owc gateway`` (HTTP server)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.cli.cliargs import add_config_args, fail, load_from_args

# how often the server looks at its stop flag in a thread of `owc run` (uvicorn: 10 times a second); a
# signal wakes it at once
TICK_S = 1.0

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
    import contextlib
    import logging

    import uvicorn

    from services.gateway.app import create_app

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
    )

    def close_streams() -> None:
        # End the open SSE streams first, or the graceful shutdown would wait for them.
        runtime = getattr(app.state, "runtime", None)
        if runtime is not None:
            try:
                asyncio.get_running_loop().call_soon_threadsafe(runtime.hubs.close_all)
            except RuntimeError:
                runtime.hubs.close_all()

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            close_streams()
            super().handle_exit(sig, frame)
            loop, wake = getattr(self, "_loop", None), getattr(self, "_wake", None)
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed already
                    loop.call_soon_threadsafe(wake.set)
            # uvicorn re-raises the signal after shutting down (exit status -15); a clean
            # stop on request is a success for the runner and for systemd/docker.
            self._captured_signals.clear()

        async def main_loop(self) -> None:
            # uvicorn wakes 10 times a second to look at should_exit (a third of an idle stack's CPU);
            # its per-second work (the Date header) needs one tick a second, and a signal wakes it at once
            self._wake = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 10) % 864000  # on_tick's "once a second" is counter % 10 == 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK_S)
                should_exit = await self.on_tick(counter)

        async def on_tick(self, counter: int) -> bool:
            # in a thread of `owc run` (no signals there): stop when the process stops
            if stop is not None and stop.is_set() and not self.should_exit:
                close_streams()
                self.should_exit = True
            return await super().on_tick(counter)

    server = Server(config)
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
