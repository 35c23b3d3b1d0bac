"""A strict obs-websocket 5 request client on top of obsws-python.

obsws-python's ``ReqClient`` is kept for the connection and its request
helpers, but three of its habits do not suit a long-running capture:

* with no host/port/password it silently reads a ``config.toml``: we always
  pass all three;
* ``req()`` does not match request ids, so after a timeout the late answer
  would be taken for the next request's: :meth:`ObsRequestClient.send`
  matches ``requestId`` and a timeout ends the connection;
* a refused password or a kick only shows up as "failed to identify": we
  read the close frame and raise with its code (4009 wrong password, 4011
  kicked; what each code means is in :mod:`services.capture.obs_errors`),
  and events (``ExitStarted``, program scene changes) that arrive between
  responses are handled instead of being mistaken for responses.

One client per thread: nothing here is locked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

from obsws_python import ReqClient
from obsws_python.baseclient import ObsClient
from obsws_python.error import OBSSDKError, OBSSDKRequestError
from obsws_python.util import as_dataclass
from websocket import ABNF, WebSocketException, WebSocketTimeoutException

from services.capture.obs_errors import CLOSE_AUTH_FAILED, CLOSE_SESSION_INVALIDATED, PROBLEMS, ProblemKey

log = logging.getLogger("owc.capture.obs")

# obs-websocket 5 event subscription bits (General: ExitStarted; Scenes: program scene changes)
SUB_GENERAL = 1 << 0
SUB_SCENES = 1 << 2


def auth_response(password: str, salt: str, challenge: str) -> str:
    """obs-websocket 5 authentication: b64(sha256(b64(sha256(password+salt)) + challenge))."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


class ObsError(Exception):
    """Names its row in :data:`~services.capture.obs_errors.PROBLEMS` (``problem``); ``kind`` comes from there."""

    problem: ProblemKey = "request"

    @property
    def kind(self) -> str:
        return PROBLEMS[self.problem].kind


class ObsConnectError(ObsError):
    """Nothing (or no obs-websocket) answers at host:port."""

    problem = "connect"


class ObsAuthError(ObsError):
    """Password missing or refused."""

    problem = CLOSE_AUTH_FAILED


class ObsTimeoutError(ObsError):
    problem = "timeout"


class ObsClosedError(ObsError):
    """The websocket closed (with ``code`` when OBS sent a close frame) or dropped."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        self.problem = code if code in (CLOSE_AUTH_FAILED, CLOSE_SESSION_INVALIDATED) else "closed"
        super().__init__(f"connection closed (code {code}: {reason})" if code else f"connection lost ({reason})")


class ObsExitingError(ObsError):
    """OBS announced it is closing (``ExitStarted``)."""

    problem = "exiting"


class ObsRequestError(OBSSDKRequestError, ObsError):  # type: ignore[misc]
    """A request answered with a failure ``requestStatus``."""

    def __init__(self, req_name: str, code: int, comment: str | None) -> None:
        super().__init__(req_name, code, comment)
        self.comment = comment or ""
        self.problem = code if code in PROBLEMS else "request"


def _quiet_obsws_logging() -> None:
    # obsws-python logs every failure with a traceback (and its INFO line shows
    # the password); our own log lines say what happened
    logging.getLogger("obsws_python").setLevel(logging.CRITICAL)


class ObsRequestClient(ReqClient):  # type: ignore[misc]
    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        timeout: float,
        subs: int = SUB_GENERAL | SUB_SCENES,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        _quiet_obsws_logging()
        self.logger = log
        self.timeout = timeout
        self.on_event = on_event
        self.program_scene: str | None = None
        try:
            # all three given explicitly: never obsws-python's implicit config.toml
            self.base_client = ObsClient(host=host, port=port, password=password, subs=subs, timeout=timeout)
        except (OSError, WebSocketException) as exc:
            raise ObsConnectError(f"cannot connect to ws://{host}:{port} ({exc})") from None
        except ValueError as exc:  # no or garbled Hello
            raise ObsConnectError(f"ws://{host}:{port} is not an obs-websocket 5 server ({exc})") from None
        try:
            self.identified = self._identify(password, subs)
        except BaseException:
            self.disconnect()
            raise

    # -- low level -----------------------------------------------------
    def _recv(self) -> dict[str, Any]:
        ws = self.base_client.ws
        try:
            opcode, data = ws.recv_data()
        except WebSocketTimeoutException:
            raise ObsTimeoutError(f"OBS did not answer within {self.timeout:g}s") from None
        except (WebSocketException, OSError) as exc:
            raise ObsClosedError(None, str(exc) or type(exc).__name__) from None
        if opcode == ABNF.OPCODE_CLOSE:
            code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
            reason = data[2:].decode("utf-8", "replace") if len(data) > 2 else ""
            raise ObsClosedError(code, reason or "closed by OBS")
        try:
            msg = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ObsClosedError(None, "OBS sent something that is not JSON") from None
        if not isinstance(msg, dict) or "op" not in msg:
            raise ObsClosedError(None, "OBS sent a message without an op code")
        return msg

    def _send_json(self, payload: dict[str, Any]) -> None:
        try:
            self.base_client.ws.send(json.dumps(payload))
        except (WebSocketException, OSError) as exc:
            raise ObsClosedError(None, str(exc) or type(exc).__name__) from None

    def _identify(self, password: str, subs: int) -> dict[str, Any]:
        hello = self.base_client.server_hello
        d = hello.get("d", {}) if isinstance(hello, dict) else {}
        if not isinstance(hello, dict) or hello.get("op") != 0:
            raise ObsConnectError("the server did not send an obs-websocket 5 Hello")
        self.server_version = str(d.get("obsWebSocketVersion", "?"))
        payload: dict[str, Any] = {"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": subs}}
        auth = d.get("authentication")
        if auth:
            if not password:
                raise ObsAuthError("OBS requires a password but obs.password is empty")
            payload["d"]["authentication"] = auth_response(password, auth["salt"], auth["challenge"])
        self._send_json(payload)
        while True:
            msg = self._recv()
            if msg["op"] == 2:
                return dict(msg.get("d", {}))
            if msg["op"] == 5:  # an event before Identified: ignore
                continue
            raise ObsConnectError(f"unexpected op {msg['op']} while identifying")

    def _handle_event(self, d: dict[str, Any]) -> None:
        event_type = str(d.get("eventType", ""))
        data = d.get("eventData") or {}
        if event_type == "ExitStarted":
            raise ObsExitingError("OBS is closing (ExitStarted)")
        if event_type == "CurrentProgramSceneChanged" and isinstance(data, dict):
            self.program_scene = str(data.get("sceneName", "")) or None
        if self.on_event is not None:
            self.on_event(event_type, data if isinstance(data, dict) else {})

    # -- requests ------------------------------------------------------
    def request(self, request_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its ``responseData`` (``{}`` if none)."""
        request_id = uuid.uuid4().hex
        payload: dict[str, Any] = {"op": 6, "d": {"requestType": request_type, "requestId": request_id}}
        if data is not None:
            payload["d"]["requestData"] = data
        deadline = time.monotonic() + self.timeout
        self._send_json(payload)
        while True:
            msg = self._recv()
            op = msg["op"]
            d = msg.get("d") or {}
            if op == 5:
                self._handle_event(d)
            elif op == 7 and d.get("requestId") == request_id:
                status = d.get("requestStatus") or {}
                if not status.get("result"):
                    raise ObsRequestError(request_type, int(status.get("code", 0)), status.get("comment"))
                return dict(d.get("responseData") or {})
            if time.monotonic() > deadline:
                raise ObsTimeoutError(f"no answer to {request_type} within {self.timeout:g}s")

    def send(self, param: str, data: dict[str, Any] | None = None, raw: bool = False) -> Any:
        """ReqClient's entry point for its helpers, with request-id matching."""
        response = self.request(param, data)
        if raw:
            return response
        return as_dataclass(param, response) if response else None

    def disconnect(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead socket
            self.base_client.ws.close(timeout=0.5)


def describe_sources(client: ObsRequestClient, limit: int = 25) -> str:
    """``scenes: A, B; inputs: C (kind), …`` — for a 'no such source' message."""
    parts: list[str] = []
    try:
        scenes = client.request("GetSceneList").get("scenes") or []
        # GetSceneList lists scenes bottom-up; show them in the UI's order
        names = [str(s.get("sceneName")) for s in reversed(scenes) if isinstance(s, dict)]
        parts.append("scenes: " + (", ".join(repr(n) for n in names[:limit]) or "none"))
        inputs = client.request("GetInputList").get("inputs") or []
        shown = [
            f"{i.get('inputName')!r} ({i.get('unversionedInputKind') or i.get('inputKind')})"
            for i in inputs
            if isinstance(i, dict)
        ]
        parts.append("inputs: " + (", ".join(shown[:limit]) or "none"))
    except (ObsError, OBSSDKError) as exc:
        parts.append(f"(could not list the sources: {exc})")
    return "; ".join(parts)
