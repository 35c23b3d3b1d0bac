"""Every error answer of the API has one shape, :class:`~services.gateway.models.ErrorOut`:
``detail`` (a sentence), ``code`` (a stable word) and, for a 422, ``errors`` (each field)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.utils import is_body_allowed_for_status_code
from redis.exceptions import RedisError, ResponseError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute

from services.common.infra.redisio import write_refusal
from services.gateway.models import ErrorOut
from services.gateway.security import allowed_methods

log = logging.getLogger("owc.gateway")

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
# What every mutation may answer before it runs: the guard of security.py (origin, JSON, admin token, size).
GUARD_ERRORS = {
    401: "Admin token missing or wrong.",
    403: "Cross-origin request.",
    413: "Body too large.",
    415: "Body is not application/json.",
}


def error_responses(why: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the OpenAPI: each error status (in order) as :class:`ErrorOut`, and why."""
    return {status: {"model": ErrorOut, "description": text} for status, text in sorted(why.items())}


def guarded_responses(why: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """:func:`error_responses` of a mutation: the guard's errors plus its own (``why``: at least its 422)."""
    return error_responses({**GUARD_ERRORS, **why})


class CommandFailedError(Exception):
    """The state service refused a command or did not answer: the HTTP status and why."""

    def __init__(self, status_code: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.code = code


def redis_problem(exc: BaseException) -> tuple[str, str]:
    """``(detail, code)`` for an HTTP answer: Redis refusing writes is not Redis being unreachable."""
    cause = write_refusal(exc)
    if cause is not None:
        return f"Redis cannot write: {cause}; counting is paused, nothing is lost; try again later", "redis_write"
    if isinstance(exc, ResponseError):
        return f"Redis refused the request ({str(exc)[:200]})", "redis"
    return f"Redis is not reachable ({type(exc).__name__}); try again", "redis"


def describe_error(err: dict[str, Any]) -> str:
    """One pydantic validation error as a sentence."""
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
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": err.get("type", "")}
        for err in errors
    ]


def add_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Answer every error as :class:`ErrorOut` (``routes``: all of them, for ``Allow`` on a 405)."""

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        detail = "; ".join(describe_error(e) for e in errors[:5]) or "invalid request"
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


def document_validation_errors(app: FastAPI) -> None:
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
