"""ASGI middlewares: the guard in front of every mutation, and the security headers.

A mutation (POST/PUT/PATCH/DELETE) must
- come from the same origin when the browser says where it comes from
  (``Origin``; ``Sec-Fetch-Site: cross-site`` is refused too) -> else 403,
- be ``application/json`` (a cross-site HTML form or a no-cors ``fetch`` can
  only send form or text bodies, and a JSON one needs a CORS preflight that
  this server never grants) -> else 415; a DELETE without a body needs no
  content type (a cross-site DELETE always needs that preflight),
- fit in ``gateway.max_body_bytes`` -> else 413,
- carry ``Authorization: Bearer <token>`` when ``gateway.admin_token`` is
  set, compared in constant time -> else 401.
When the gateway listens on a loopback address, the ``Host`` of *every*
request (reads too: status, history, export, metrics, the event stream) must
be a loopback name or address: that defeats DNS rebinding (a foreign site
whose name resolves to 127.0.0.1 would otherwise be same-origin with us and
could read our answers).

Only requests that some route accepts are guarded as mutations; any other
method or path goes on to the router, which answers 404 or 405 (with every
allowed method in ``Allow``) — nothing runs for them.

:class:`SecurityHeaders` puts a Content-Security-Policy on every response,
and forbids framing everything except the overlay (clickjacking of /admin).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Match, Mount

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


def is_loopback_host(host_header: str, scheme: str = "http") -> bool:
    """The ``Host`` names this machine: ``localhost`` or a loopback address (never a DNS name that
    merely resolves to one — that is what a rebinding attack uses)."""
    name = _split_host(host_header, scheme)[0]
    return name in LOOPBACK_NAMES or is_loopback_bind(name)


def _method_routes(routes: Iterable[BaseRoute]) -> Iterable[BaseRoute]:
    # Mounts (static files) match any method; they serve GET/HEAD only and answer 405 themselves.
    return (r for r in routes if not isinstance(r, Mount) and getattr(r, "methods", None))


def routed(routes: Iterable[BaseRoute], scope: Scope) -> bool:
    """Some route accepts this method on this path."""
    return any(route.matches(scope)[0] == Match.FULL for route in _method_routes(routes))


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route accepts on this path (one path can have several routes: GET and POST
    of ``/sessions`` live in different routers)."""
    methods: set[str] = set()
    for route in _method_routes(routes):
        if route.matches(scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", ()))
    return sorted(methods)


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
    def __init__(
        self,
        app: ASGIApp,
        *,
        admin_token: str | None,
        max_body_bytes: int,
        loopback_only: bool,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.token = admin_token.encode() if admin_token else None
        self.max_body = max_body_bytes
        self.loopback_only = loopback_only
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme = scope.get("scheme", "http")
        host = headers.get("host", "")
        if self.loopback_only and not is_loopback_host(host, scheme):
            await send_json(
                send,
                403,
                {
                    "detail": f"Host {host!r} is not allowed: this gateway listens on a loopback address and "
                    "answers only requests addressed to localhost / 127.0.0.1",
                    "code": "bad_host",
                },
            )
            return
        if scope["method"] not in MUTATING or not routed(self.routes, scope):
            await self.app(scope, receive, send)
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
        # A DELETE names what it removes in its path and carries no body: it needs no content type
        # (a browser sends a cross-site DELETE only after a CORS preflight, never granted). Any
        # body it does carry must be JSON like every other.
        bodyless = scope["method"] == "DELETE" and not content_type
        if content_type != "application/json" and not bodyless:
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
        if bodyless and body:
            await send_json(send, 415, {
                "detail": "a DELETE with a body must send it as JSON with Content-Type: application/json",
                "code": "unsupported_media_type",
            })
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# The pages load only their own scripts, styles, fonts and images (no CDN, no inline script).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
# OBS's browser source injects its "Custom CSS" field as a <style> element (older versions: a
# data: stylesheet), so the overlay allows inline styles; it never allows inline scripts.
OVERLAY_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline' data:")
# /docs and /redoc: Swagger UI and ReDoc served by the gateway itself, started by script files (no
# inline script). ReDoc (redoc.standalone.js of fastapi-offline 1.7.7) writes two <style> elements:
# styled-components' empty one (it fills it through the CSSOM) and its scrollbar CSS; their hashes
# allow exactly those two texts (tests/e2e/test_gateway_browser.py fails if the bundle changes them).
# Its search runs in a worker built from a blob: URL. Its sidebar's Redocly logo from a CDN is refused.
DOCS_STYLES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' 'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"
)
DOCS_POLICY = PAGE_POLICY.replace("style-src 'self'", f"style-src 'self' {DOCS_STYLES}") + "; worker-src 'self' blob:"
# Everything else (JSON, CSV, SSE, images, static files) is never a page: nothing may load from it.
API_POLICY = "default-src 'none'"
NO_FRAMING = "frame-ancestors 'none'"
# Pages another page may frame: the overlay (OBS loads it top-level, but other tools embed it).
EMBEDDABLE = frozenset({"/", "/overlay"})
DOCS_PAGES = frozenset({"/docs", "/redoc"})
PAGES = frozenset({"/admin"})


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every response to ``path`` gets (framing, CSP, no MIME sniffing)."""
    out = [(b"x-content-type-options", b"nosniff")]
    if path in EMBEDDABLE:
        return [*out, (b"content-security-policy", OVERLAY_POLICY.encode())]
    if path in PAGES:
        policy = PAGE_POLICY
    elif path in DOCS_PAGES:
        policy = DOCS_POLICY
    else:
        policy = API_POLICY
    return [
        *out,
        (b"content-security-policy", f"{policy}; {NO_FRAMING}".encode()),
        (b"x-frame-options", b"DENY"),
    ]


class SecurityHeaders:
    """Adds :func:`security_headers` to every HTTP response (errors and the guard's refusals too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
