"""A local Twitch: the OAuth endpoints (device code flow, refresh, validate) and the Helix endpoints the Twitch
actions use, on 127.0.0.1, following Twitch's API reference for their status codes and bodies (``{"error":
"Bad Request", "status": 400, "message": "…"}``).

- ``POST /oauth2/device``, ``POST /oauth2/token`` (device code: ``authorization_pending`` until
  :meth:`HelixServer.approve`; ``refresh_token``), ``GET /oauth2/validate`` (``Authorization: OAuth``);
- ``POST|GET|PATCH /helix/predictions``: one active or locked prediction per broadcaster (400
  otherwise), title ≤ 45, 2–10 outcomes of ≤ 25, window 30–1800 s, ACTIVE → LOCKED when the window
  is over, RESOLVED needs a ``winning_outcome_id``, an ended one cannot be ended again (400);
- ``POST /helix/streams/markers``: 404 when the channel is not live, description ≤ 140;
- every Helix call: 401 for an unknown or expired token or a Client-Id that is not the token's,
  403 for a missing scope, 429 with ``Ratelimit-Reset`` when :meth:`rate_limit` says so.

:attr:`HelixServer.arrivals` records when each request arrived (wall clock) and its JSON body, so a test can
check that a delayed action was not sent early. :meth:`hold` lets the next request of a path take effect and
then hang without an answer, so a test can kill the caller while the answer is lost.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from services.common.infra.ports import free_port

CLIENT_ID = "owctestclient0123456789"
ALL_SCOPES = ("channel:manage:predictions", "channel:manage:broadcast", "chat:read", "chat:edit")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # nanoseconds, like Twitch


@dataclass
class IssuedToken:
    access_token: str
    refresh_token: str
    scopes: tuple[str, ...]
    expires_at: float
    user_id: str
    login: str
    client_id: str = CLIENT_ID
    revoked: bool = False

    def file_json(self) -> str:
        """The token file ``owc actions twitch-login`` would write."""
        return json.dumps({"access_token": self.access_token, "refresh_token": self.refresh_token,
                           "expires_at": self.expires_at, "scopes": list(self.scopes),
                           "client_id": self.client_id, "user_id": self.user_id, "login": self.login})


@dataclass
class FakePrediction:
    id: str
    title: str
    outcomes: list[dict[str, Any]]
    window_s: int
    created: float
    status: str = "ACTIVE"
    winning_outcome_id: str | None = None
    ended: float | None = None
    locked: float | None = None

    def refresh(self, now: float) -> None:
        if self.status == "ACTIVE" and now >= self.created + self.window_s:
            self.status, self.locked = "LOCKED", self.created + self.window_s

    def data(self, user_id: str, login: str) -> dict[str, Any]:
        return {
            "id": self.id, "broadcaster_id": user_id, "broadcaster_name": login, "broadcaster_login": login,
            "title": self.title, "winning_outcome_id": self.winning_outcome_id,
            "outcomes": [{**o, "users": 0, "channel_points": 0, "top_predictors": None} for o in self.outcomes],
            "prediction_window": self.window_s, "status": self.status, "created_at": _rfc3339(self.created),
            "ended_at": _rfc3339(self.ended) if self.ended else None,
            "locked_at": _rfc3339(self.locked) if self.locked else None,
        }


@dataclass
class HelixServer:
    port: int = field(default_factory=free_port)
    user_id: str = "141981764"
    login: str = "owcstreamer"
    live: bool = True
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    predictions: list[FakePrediction] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    arrivals: list[tuple[float, str, str, Any]] = field(default_factory=list)  # (wall time, method, path, JSON body)
    _devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    _limited: int = 0
    trickle_s: float = 0.0  # > 0: every answer's body is sent one byte per this many seconds
    flood_bytes: int = 0  # > 0: every answer's body is this many bytes (spaces, then the JSON)
    _hold: dict[str, threading.Event] = field(default_factory=dict)
    held: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def oauth_url(self) -> str:
        return f"{self.url}/oauth2"

    @property
    def helix_url(self) -> str:
        return f"{self.url}/helix"

    # ------------------------------------------------------------------ test controls

    def issue(self, scopes: tuple[str, ...] = ALL_SCOPES, expires_in: float = 14400) -> IssuedToken:
        with self.lock:
            token = IssuedToken(secrets.token_hex(15), secrets.token_hex(25), scopes, time.time() + expires_in,
                                self.user_id, self.login)
            self.tokens[token.access_token] = token
            return token

    def revoke_all(self) -> None:
        with self.lock:
            for t in self.tokens.values():
                t.revoked = True

    def expire(self, access_token: str) -> None:
        with self.lock:
            self.tokens[access_token].expires_at = time.time() - 1

    def approve(self, user_code: str, scopes: tuple[str, ...] | None = None) -> None:
        with self.lock:
            for d in self._devices.values():
                if d["user_code"] == user_code:
                    d["approved"] = scopes or tuple(d["scopes"])

    def device_codes(self) -> list[str]:
        with self.lock:
            return [d["user_code"] for d in self._devices.values()]

    def rate_limit(self, n: int) -> None:
        """The next ``n`` Helix requests are answered 429 (Ratelimit-Reset: the whole second after the next)."""
        with self.lock:
            self._limited = n

    def hold(self, method: str, path: str) -> None:
        """The next ``method path`` request takes effect, then hangs without an answer until :meth:`release`."""
        with self.lock:
            self._hold[f"{method} {path}"] = threading.Event()

    def release(self) -> None:
        with self.lock:
            for ev in self._hold.values():
                ev.set()

    def current(self) -> FakePrediction | None:
        with self.lock:
            now = time.time()
            for p in self.predictions:
                p.refresh(now)
            return next((p for p in reversed(self.predictions) if p.status in ("ACTIVE", "LOCKED")), None)

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r == (method, path))

    # ------------------------------------------------------------------ the server

    def start(self) -> HelixServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _do(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                key = f"{method} {parts.path}"
                with server.lock:
                    server.requests.append((method, parts.path))
                    server.arrivals.append((time.time(), method, parts.path, _json_or_none(body)))
                    hold = server._hold.pop(key, None)
                status, payload, headers = server.handle(method, parts.path, parse_qs(parts.query),
                                                         dict(self.headers.items()), body)
                if hold is not None:
                    server.held.set()
                    hold.wait(60)
                    self.close_connection = True
                    return  # the effect happened; the caller never hears of it
                data = b"" if payload is None else json.dumps(payload).encode()
                if server.flood_bytes:
                    data = b" " * max(0, server.flood_bytes - len(data)) + data
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if server.trickle_s:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(server.trickle_s)
                    else:
                        self.wfile.write(data)
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

            def do_PATCH(self) -> None:
                self._do("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="helix", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ routing

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        h = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            if path.startswith("/oauth2/"):
                return self._oauth(method, path, h, body)
            if path.startswith("/helix/"):
                return self._helix(method, path, query, h, body)
        return _err(404, "Not Found", "no such endpoint")

    def _oauth(self, method: str, path: str, h: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if method == "POST" and path == "/oauth2/device":
            if form.get("client_id") != CLIENT_ID:
                return 400, {"status": 400, "message": "invalid client"}, {}
            code = {"device_code": secrets.token_hex(20), "user_code": secrets.token_hex(4).upper(),
                    "scopes": form.get("scopes", "").split(), "approved": None}
            self._devices[code["device_code"]] = code
            return 200, {"device_code": code["device_code"], "expires_in": 1800, "interval": 1,
                         "user_code": code["user_code"], "verification_uri":
                         f"https://www.twitch.tv/activate?public=true&device-code={code['user_code']}"}, {}
        if method == "POST" and path == "/oauth2/token":
            if form.get("grant_type") == DEVICE_GRANT:
                d = self._devices.get(form.get("device_code", ""))
                if d is None:
                    return 400, {"status": 400, "message": "invalid device code"}, {}
                if d["approved"] is None:
                    return 400, {"status": 400, "message": "authorization_pending"}, {}
                del self._devices[form["device_code"]]
                return 200, self._token_answer(self.issue(tuple(d["approved"]))), {}
            if form.get("grant_type") == "refresh_token":
                old = next((t for t in self.tokens.values() if t.refresh_token == form.get("refresh_token")), None)
                if old is None or old.revoked or form.get("client_id") != CLIENT_ID:
                    return 400, {"status": 400, "message": "Invalid refresh token"}, {}
                old.revoked = True
                return 200, self._token_answer(self.issue(old.scopes)), {}
            return 400, {"status": 400, "message": "unsupported grant type"}, {}
        if method == "GET" and path == "/oauth2/validate":
            auth = h.get("authorization", "")
            token = self.tokens.get(auth.removeprefix("OAuth ").strip()) if auth.startswith("OAuth ") else None
            if token is None or token.revoked or token.expires_at <= time.time():
                return 401, {"status": 401, "message": "invalid access token"}, {}
            return 200, {"client_id": token.client_id, "login": token.login, "scopes": list(token.scopes),
                         "user_id": token.user_id, "expires_in": int(token.expires_at - time.time())}, {}
        return _err(404, "Not Found", "no such endpoint")

    @staticmethod
    def _token_answer(t: IssuedToken) -> dict[str, Any]:
        return {"access_token": t.access_token, "expires_in": int(t.expires_at - time.time()),
                "refresh_token": t.refresh_token, "scope": list(t.scopes), "token_type": "bearer"}

    def _helix(self, method: str, path: str, query: dict[str, list[str]], h: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        auth = h.get("authorization", "")
        token = self.tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
        if token is None or token.revoked or token.expires_at <= time.time():
            return _err(401, "Unauthorized", "Invalid OAuth token")
        if h.get("client-id") != token.client_id:
            return _err(401, "Unauthorized", "Client ID and OAuth token do not match")
        if self._limited > 0:
            self._limited -= 1
            reset = str(int(time.time()) + 2)  # the bucket refills within two seconds
            return 429, {"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"}, {
                "Ratelimit-Limit": "800", "Ratelimit-Remaining": "0", "Ratelimit-Reset": reset}
        data: dict[str, Any] = json.loads(body) if body else {}
        if path == "/helix/predictions":
            if "channel:manage:predictions" not in token.scopes:
                return _err(403, "Forbidden", "Missing scope: channel:manage:predictions")
            return self._predictions(method, query, data, token)
        if path == "/helix/streams/markers" and method == "POST":
            if "channel:manage:broadcast" not in token.scopes:
                return _err(403, "Forbidden", "Missing scope: channel:manage:broadcast")
            if str(data.get("user_id")) != token.user_id:
                return _err(403, "Forbidden", "user_id must match the user in the token")
            if len(str(data.get("description", ""))) > 140:
                return _err(400, "Bad Request", "description must be at most 140 characters")
            if not self.live:
                return _err(404, "Not Found", "The user is not streaming live")
            marker = {"id": uuid.uuid4().hex, "created_at": _rfc3339(time.time()),
                      "description": str(data.get("description", "")), "position_seconds": 60 + len(self.markers)}
            self.markers.append(marker)
            return 200, {"data": [marker]}, {}
        return _err(404, "Not Found", "no such endpoint")

    def _predictions(self, method: str, query: dict[str, list[str]], data: dict[str, Any],
                     token: IssuedToken) -> tuple[int, Any, dict[str, str]]:
        now = time.time()
        for p in self.predictions:
            p.refresh(now)
        if method == "GET":
            if query.get("broadcaster_id", [""])[0] != token.user_id:
                return _err(400, "Bad Request", "The broadcaster_id query parameter must match the user in the token")
            ids = query.get("id", [])
            found = [p for p in reversed(self.predictions) if not ids or p.id in ids]
            first = int(query.get("first", ["20"])[0])
            return 200, {"data": [p.data(token.user_id, token.login) for p in found[:first]],
                         "pagination": {}}, {}
        if str(data.get("broadcaster_id")) != token.user_id:
            return _err(400, "Bad Request", "The broadcaster_id must match the user in the token")
        if method == "POST":
            title, outcomes, window = str(data.get("title", "")), data.get("outcomes") or [], data.get(
                "prediction_window")
            if not 1 <= len(title) <= 45:
                return _err(400, "Bad Request", "The title must be 1 to 45 characters")
            if not 2 <= len(outcomes) <= 10 or any(not 1 <= len(str(o.get("title", ""))) <= 25 for o in outcomes):
                return _err(400, "Bad Request", "Provide 2 to 10 outcomes with titles of 1 to 25 characters")
            if not isinstance(window, int) or not 30 <= window <= 1800:
                return _err(400, "Bad Request", "prediction_window must be from 30 to 1800 seconds")
            if any(p.status in ("ACTIVE", "LOCKED") for p in self.predictions):
                return _err(400, "Bad Request", "The broadcaster already has an active prediction")
            colors = ["BLUE", "PINK"]
            p = FakePrediction(str(uuid.uuid4()), title, [
                {"id": str(uuid.uuid4()), "title": str(o["title"]), "color": colors[min(i, 1)]}
                for i, o in enumerate(outcomes)], window, now)
            self.predictions.append(p)
            return 200, {"data": [p.data(token.user_id, token.login)]}, {}
        if method == "PATCH":
            p = next((x for x in self.predictions if x.id == data.get("id")), None)
            if p is None:
                return _err(404, "Not Found", "The prediction was not found")
            status = data.get("status")
            if status not in ("RESOLVED", "CANCELED", "LOCKED"):
                return _err(400, "Bad Request", "status must be RESOLVED, CANCELED or LOCKED")
            if p.status not in ("ACTIVE", "LOCKED") or (status == "LOCKED" and p.status != "ACTIVE"):
                return _err(400, "Bad Request", f"The prediction is {p.status} and cannot be set to {status}")
            if status == "RESOLVED":
                winner = data.get("winning_outcome_id")
                if winner not in [o["id"] for o in p.outcomes]:
                    return _err(400, "Bad Request", "winning_outcome_id must be one of the prediction's outcomes")
                p.winning_outcome_id = winner
            p.status = status
            if status == "LOCKED":
                p.locked = now
            else:
                p.ended = now
            return 200, {"data": [p.data(token.user_id, token.login)]}, {}
        return _err(404, "Not Found", "no such endpoint")


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None  # a form (OAuth) or garbage: the time and path are still recorded


def _err(status: int, error: str, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": error, "status": status, "message": message}, {}
