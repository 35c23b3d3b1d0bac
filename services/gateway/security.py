"""ASGI middlewares: request metrics, and the guard in front of every mutation.

A mutation (POST/PUT/PATCH/DELETE) must
- come from the same origin when the browser says where it comes from
  (``Origin``; ``Sec-Fetch-Site: cross-site`` is refused too) -> else 403,
- be ``application/json`` (a cross-site HTML form or a no-cors ``fetch`` can
  only send form or text bodies, and a JSON one needs a CORS preflight that
  this server never grants) -> else 415,
- fit in ``gateway.max_body_bytes`` -> else 413,
- carry ``Authorization: Bearer <token>`` when ``gateway.admin_token`` is
  set, compared in constant time -> else 401.
When the gateway listens on a loopback address, the ``Host`` of a mutation
must be a loopback name too: that defeats DNS rebinding (a foreign site whose
name resolves to 127.0.0.1 would otherwise look same-origin).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from services.gateway import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_bind(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str, scheme: str) -> tuple[str, int]:
    """``"Example.com:3000"`` -> ``("example.com", 3000)``; default port by scheme."""
    parsed = urlsplit(f"//{value}")
    host = (parsed.hostname or "").lower()
    try:
        port = parsed.port
    except ValueError:
        port = None
    return host, port if port is not None else DEFAULT_PORTS.get(scheme, 80)


def same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """``Origin`` names the host and port this request was sent to.

    The scheme is not compared: behind a TLS-terminating proxy the page is
    https while this server sees http, and no other site can serve pages from
    our own host and port anyway. A ``Host`` without a port gets the default
    port of the origin's scheme (same reason).
    """
    del scheme
    if not origin or origin == "null":
        return False
    parsed = urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    return _split_host(parsed.netloc, parsed.scheme) == _split_host(host_header, parsed.scheme)


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class MutationGuard:
    def __init__(self, app: ASGIApp, *, admin_token: str | None, max_body_bytes: int, loopback_only: bool) -> None:
        self.app = app
        self.token = admin_token.encode() if admin_token else None
        self.max_body = max_body_bytes
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme = scope.get("scheme", "http")
        host = headers.get("host", "")
        if self.loopback_only and _split_host(host, scheme)[0] not in LOOPBACK_NAMES:
            await send_json(
                send,
                403,
                {
                    "detail": f"Host {host!r} is not allowed: the gateway only accepts "
                    "changes addressed to localhost / 127.0.0.1",
                    "code": "bad_host",
                },
            )
            return
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host, scheme):
            await send_json(
                send,
                403,
                {
                    "detail": "cross-origin request refused: changes are only accepted from the gateway's own pages",
                    "code": "cross_origin",
                },
            )
            return
        if headers.get("sec-fetch-site") == "cross-site":
            await send_json(send, 403, {"detail": "cross-site request refused", "code": "cross_origin"})
            return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            await send_json(
                send,
                415,
                {
                    "detail": "send the body as JSON with Content-Type: application/json "
                    f"(got {content_type or 'no content type'!r})",
                    "code": "unsupported_media_type",
                },
            )
            return
        if self.token is not None:
            auth = headers.get("authorization", "")
            scheme_word, _, given = auth.partition(" ")
            if scheme_word.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                await send_json(
                    send,
                    401,
                    {
                        "detail": "this gateway needs the admin token: send Authorization: Bearer <token> "
                        "(open /admin?token=… once)",
                        "code": "unauthorized",
                    },
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await send_json(
                send, 413, {"detail": f"request body too large (limit {self.max_body} bytes)", "code": "too_large"}
            )
            return
        # Read the body here (bounded) so a body without Content-Length cannot exceed the limit either.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await send_json(
                    send, 413, {"detail": f"request body too large (limit {self.max_body} bytes)", "code": "too_large"}
                )
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestMetrics:
    """Counts every request by route template (not raw path: low cardinality) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        streaming = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type" and v.startswith(b"text/event-stream"):
                        streaming = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/") else "other")
            metrics.HTTP_REQUESTS.labels(template, scope["method"], str(status)).inc()
            if not streaming:
                metrics.HTTP_SECONDS.labels(template).observe(time.perf_counter() - started)
