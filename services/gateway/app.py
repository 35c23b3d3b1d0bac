"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.common.config.settings import Settings, home
from services.common.infra.redisio import connect_async, keys_for
from services.gateway.deps import Runtime
from services.gateway.errors import add_error_handlers, document_validation_errors
from services.gateway.hub import Hubs
from services.gateway.metrics import add_request_metrics
from services.gateway.routers import actions, channels, commands, events, legacy, mode, ops, pages, presets
from services.gateway.security import MutationGuard, SecurityHeaders, is_loopback_bind
from services.gateway.state_client import StateClient
from services.gateway.store import GatewayStore

log = logging.getLogger("owc.gateway")
STATIC = Path(__file__).resolve().parent / "static"
# Requests wait for one of these instead of failing when hundreds of SSE clients connect at once.
REDIS_CONNECTIONS = 64


def create_app(settings: Settings, config_dir: Path | None = None) -> FastAPI:
    """Build the gateway app; Redis is opened in the lifespan (nothing at import time)."""
    gw = settings.gateway
    cfg_dir = config_dir or gw.config_dir or home()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect_async(settings, max_connections=REDIS_CONNECTIONS)
        keys = keys_for(settings)
        store = GatewayStore(client, keys)
        runtime = Runtime(
            settings=settings,
            config_dir=cfg_dir,
            store=store,
            state_client=StateClient(client, keys, gw.command_timeout_s),
            hubs=Hubs(store),
        )
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.hubs.stop()
            await client.aclose()

    app = FastAPI(
        title="OW Victory Counter gateway",
        version="1",
        description="Counts, history and live events of the OW Victory Counter, plus the OBS overlay and admin pages.",
        lifespan=lifespan,
        docs_url=None,  # served by routers/pages.py from local files (FastAPI's pages load a CDN)
        redoc_url=None,
    )
    modules = (channels, commands, mode, presets, events, actions, legacy, ops, pages)
    for module in modules:
        app.include_router(module.router)
    # Every route with its full path, for the guard and for `Allow` (FastAPI wraps included routers).
    routes = [*app.router.routes, *(route for module in modules for route in module.router.routes)]
    # Swagger UI and ReDoc from the fastapi-offline wheel: /docs and /redoc work offline, with no CDN.
    app.mount("/static/apidocs", StaticFiles(packages=[("fastapi_offline", "static")]), name="apidocs")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_error_handlers(app, routes)

    token = gw.admin_token.get_secret_value() if gw.admin_token else None
    app.add_middleware(
        MutationGuard,
        admin_token=token,
        max_body_bytes=gw.max_body_bytes,
        loopback_only=is_loopback_bind(gw.host),
        routes=routes,
    )
    add_request_metrics(app)  # outside the guard: its refusals are counted too
    app.add_middleware(SecurityHeaders)  # outermost: the guard's refusals get the headers too
    document_validation_errors(app)
    return app
