"""The FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.utils import is_body_allowed_for_status_code
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.common.redisio import connect_async, keys_for
from services.common.settings import Settings, home
from services.gateway.commands import CommandFailedError, CommandSender
from services.gateway.deps import Runtime
from services.gateway.hub import Hubs
from services.gateway.models import ErrorOut
from services.gateway.routers import channels, commands, events, legacy, ops, pages
from services.gateway.security import (
    MutationGuard,
    RequestMetrics,
    SecurityHeaders,
    allowed_methods,
    is_loopback_bind,
)
from services.gateway.store import Store, redis_problem

log = logging.getLogger("owc.gateway")
STATIC = Path(__file__).resolve().parent / "static"
# Requests wait for one of these instead of failing when hundreds of SSE clients connect at once.
REDIS_CONNECTIONS = 64


def _describe_error(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
    where = ".".join(loc)
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if err.get("type") == "missing" and loc == []:
        return "a JSON body is required"
    if err.get("type") == "extra_forbidden":
        return f"unknown field {where!r}"
    if where in ("query", "path", "header"):
        return msg
    return f"{where}: {msg}" if where else msg


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": err.get("type", "")}
        )
    return out


# The `code` of an error answer that has no more specific one.
STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}
VALIDATION_DESCRIPTION = "Invalid request: `detail` says what is wrong in a sentence, `errors` lists each field."


def _document_our_validation_errors(app: FastAPI) -> None:
    """Make the OpenAPI say what a 422 really is: :class:`ErrorOut` (``detail`` a string).

    FastAPI documents its own ``HTTPValidationError`` (``detail`` an array) on every route with
    parameters, but our handler answers with a sentence plus ``errors``; clients and schema
    checkers must see the shape they get.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        ref = {"$ref": "#/components/schemas/ErrorOut"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                response = operation.get("responses", {}).get("422")
                if response is not None and "HTTPValidationError" in str(response):
                    operation["responses"]["422"] = {
                        "description": VALIDATION_DESCRIPTION,
                        "content": {"application/json": {"schema": ref}},
                    }
        components = schema["components"]["schemas"]
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        assert ErrorOut.__name__ in components  # the 404s of every channel route refer to it
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings, config_dir: Path | None = None) -> FastAPI:
    """Build the gateway app; Redis is opened in the lifespan (nothing at import time)."""
    gw = settings.gateway
    cfg_dir = config_dir or gw.config_dir or home()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect_async(settings, max_connections=REDIS_CONNECTIONS)
        keys = keys_for(settings)
        store = Store(client, keys)
        runtime = Runtime(
            settings=settings,
            config_dir=cfg_dir,
            store=store,
            commands=CommandSender(client, keys, gw.command_timeout_s),
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
    )
    modules = (channels, commands, events, legacy, ops, pages)
    for module in modules:
        app.include_router(module.router)
    # Every route with its full path, for the guard and for `Allow` (FastAPI wraps included routers).
    routes = [*app.router.routes, *(route for module in modules for route in module.router.routes)]
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        detail = "; ".join(_describe_error(e) for e in errors[:5]) or "invalid request"
        return JSONResponse({"detail": detail, "code": "invalid", "errors": _jsonable_errors(errors)}, status_code=422)

    @app.exception_handler(CommandFailedError)
    async def on_command_failed(_request: Request, exc: CommandFailedError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        status = exc.status_code
        headers = dict(exc.headers or {})
        if status == 404 and detail == "Not Found":
            detail = "no such page or endpoint (see /docs)"
        if status == 405:
            allowed = allowed_methods(routes, request.scope)
            headers["Allow"] = ", ".join(allowed)
            detail = f"method {request.method} not allowed on this path; allowed: {', '.join(allowed)} (see /docs)"
        if status == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's "error parsing the body": JSON must be UTF-8 (RFC 8259), so this is invalid JSON
            status, detail = 422, "the body is not valid JSON (it must be UTF-8 text)"
        if not is_body_allowed_for_status_code(status):
            return Response(status_code=status, headers=headers)
        code = STATUS_CODES.get(status, "error")
        return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers or None)

    @app.exception_handler(RedisError)
    async def on_redis_error(_request: Request, exc: RedisError) -> JSONResponse:
        detail, code = redis_problem(exc)
        log.warning("Redis error while answering a request: %s", exc)
        return JSONResponse({"detail": detail, "code": code}, status_code=503)

    token = gw.admin_token.get_secret_value() if gw.admin_token else None
    app.add_middleware(
        MutationGuard,
        admin_token=token,
        max_body_bytes=gw.max_body_bytes,
        loopback_only=is_loopback_bind(gw.host),
        routes=routes,
    )
    app.add_middleware(RequestMetrics)
    app.add_middleware(SecurityHeaders)  # outermost: the guard's refusals get the headers too
    _document_our_validation_errors(app)
    return app
