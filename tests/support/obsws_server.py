"""A protocol-faithful obs-websocket 5 server for the capture tests.

It speaks the real wire protocol (Hello → Identify → Identified with the
SHA-256 challenge, requests matched by ``requestId``, ``requestStatus``
codes, close codes 4009/4011, events filtered by ``eventSubscriptions``)
and serves real JPEG/PNG screenshots encoded with OpenCV, so the capture
service runs against it exactly as against OBS, minus OBS.

It runs its own asyncio loop in a thread; every public method is thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.support.ports import free_port

# obs-websocket 5 close codes and request status codes
CLOSE_UNKNOWN_REASON = 4000
CLOSE_MESSAGE_DECODE_ERROR = 4002
CLOSE_MISSING_DATA_FIELD = 4003
CLOSE_UNKNOWN_OPCODE = 4006
CLOSE_NOT_IDENTIFIED = 4007
CLOSE_ALREADY_IDENTIFIED = 4008
CLOSE_AUTHENTICATION_FAILED = 4009
CLOSE_UNSUPPORTED_RPC_VERSION = 4010
CLOSE_SESSION_INVALIDATED = 4011

SUCCESS = 100
UNKNOWN_REQUEST_TYPE = 204
MISSING_REQUEST_FIELD = 300
INVALID_REQUEST_FIELD = 400
REQUEST_FIELD_OUT_OF_RANGE = 402
OUTPUT_NOT_RUNNING = 501
RESOURCE_NOT_FOUND = 600
INVALID_RESOURCE_TYPE = 602
INVALID_RESOURCE_STATE = 604
REQUEST_PROCESSING_FAILED = 702

EVENT_GENERAL = 1 << 0
EVENT_SCENES = 1 << 2


def make_test_image(width: int = 1920, height: int = 1080, text: str = "OBS") -> npt.NDArray[np.uint8]:
    """A picture with some structure (gradient + text), so JPEG sizes are realistic."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = x[None, :].astype(np.uint8)
    image[..., 1] = y[:, None].astype(np.uint8)
    image[..., 2] = 128
    cv2.putText(image, text, (width // 10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, height / 150, (255, 255, 255), 8)
    return image


@dataclass
class FakeSource:
    name: str
    kind: str  # "scene", or an input kind: "image_source", "ffmpeg_source", "pulse_input_capture" (audio)…
    image: npt.NDArray[np.uint8] | None = None  # None: not a video source (602)
    render_fails: bool = False  # 702, like an unhooked game capture

    @property
    def is_scene(self) -> bool:
        return self.kind == "scene"


@dataclass(eq=False)
class _Session:
    ws: ServerConnection
    subscriptions: int = 0
    identified: bool = False


@dataclass
class ObsWsServer:
    password: str | None = "secret"
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    screenshot_delay_s: float = 0.0
    version: str = "5.1.0"

    def __post_init__(self) -> None:
        self.sources: dict[str, FakeSource] = {}
        self.program_scene = "Scene"
        self.add_source(FakeSource("Scene", "scene", make_test_image(text="Scene")))
        self.add_source(FakeSource("Game", "image_source", make_test_image(text="Game")))
        self.add_source(FakeSource("Mic/Aux", "pulse_input_capture", None))
        self.requests: list[tuple[str, dict[str, Any]]] = []
        # outputs, for the actions service's tests (what OBS would do with them is not simulated)
        self.replay_buffer_active = False
        # False: the profile has no replay buffer (Settings → Output), every replay request is 604 as in OBS 29
        self.replay_buffer_enabled = True
        self.recording = False
        self.record_chapters = True  # obs-websocket 5.5 (OBS 30.2+); False: an older OBS without the request
        self.replays_saved = 0
        self.chapters: list[str] = []
        self.identify_attempts = 0
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._sessions: set[_Session] = set()

    # -- control (any thread) ---------------------------------------------
    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def add_source(self, source: FakeSource) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.sources[source.name] = source

    def set_image(self, name: str, image: npt.NDArray[np.uint8]) -> None:
        with self._lock:
            self.sources[name].image = image

    def request_count(self, request_type: str) -> int:
        with self._lock:
            return sum(1 for t, _ in self.requests if t == request_type)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def session_count(self) -> int:
        return sum(1 for s in list(self._sessions) if s.identified)

    def start(self) -> ObsWsServer:
        if self._thread is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="obsws-server", daemon=True)
            self._thread.start()
        self._call(self._start())
        return self

    def stop(self, abrupt: bool = False) -> None:
        """Stop listening and end every session (``abrupt``: drop the TCP connections, no close frame)."""
        if self._loop is not None and self._server is not None:
            self._call(self._stop(abrupt))

    def close(self) -> None:
        """Stop and end the server's thread (the fixture's teardown)."""
        self.stop(abrupt=True)
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
        self._loop = None
        self._thread = None

    def kick_all(self) -> None:
        """The user kicks every session (close code 4011)."""
        self._call(self._close_all(CLOSE_SESSION_INVALIDATED, "Your session has been invalidated."))

    def exit_obs(self) -> None:
        """OBS quits: ``ExitStarted`` to General subscribers, then the server goes away."""
        self._call(self._broadcast("ExitStarted", {}, EVENT_GENERAL))
        self.stop()

    def set_program_scene(self, name: str) -> None:
        self.program_scene = name
        self._call(self._broadcast("CurrentProgramSceneChanged", {"sceneName": name}, EVENT_SCENES))

    def _call(self, coro: Awaitable[Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    # -- server (event loop thread) ---------------------------------------
    async def _start(self) -> None:
        if self._server is None:
            self._server = await serve(self._handle, self.host, self.port, max_size=None)

    async def _stop(self, abrupt: bool) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=False)  # stop listening
        for session in list(self._sessions):
            if abrupt:
                session.ws.transport.abort()
            else:  # going away (1001), as OBS does when it quits
                await self._close_session(session, 1001, "")
        await asyncio.wait_for(server.wait_closed(), 5.0)

    async def _close_session(self, session: _Session, code: int, reason: str) -> None:
        # send the close frame; do not wait long for the client's closing handshake
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(session.ws.close(code, reason), 1.0)
        session.ws.transport.abort()

    async def _close_all(self, code: int, reason: str) -> None:
        for session in list(self._sessions):
            await self._close_session(session, code, reason)

    async def _broadcast(self, event_type: str, data: dict[str, Any], intent: int) -> None:
        message = json.dumps({"op": 5, "d": {"eventType": event_type, "eventIntent": intent, "eventData": data}})
        for session in list(self._sessions):
            if session.identified and session.subscriptions & intent:
                with contextlib.suppress(ConnectionClosed):
                    await session.ws.send(message)

    async def _handle(self, ws: ServerConnection) -> None:
        session = _Session(ws)
        self._sessions.add(session)
        try:
            await self._serve_session(session)
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)

    async def _serve_session(self, session: _Session) -> None:
        ws = session.ws
        salt = base64.b64encode(secrets.token_bytes(32)).decode()
        challenge = base64.b64encode(secrets.token_bytes(32)).decode()
        hello: dict[str, Any] = {"obsWebSocketVersion": self.version, "rpcVersion": 1}
        if self.password is not None:
            hello["authentication"] = {"challenge": challenge, "salt": salt}
        await ws.send(json.dumps({"op": 0, "d": hello}))
        async for raw in ws:
            try:
                msg = json.loads(raw)
                op = msg["op"]
                d = msg["d"]
            except (ValueError, KeyError, TypeError):
                await ws.close(CLOSE_MESSAGE_DECODE_ERROR, "Unable to decode the message.")
                return
            if op == 1:
                if session.identified:
                    await ws.close(CLOSE_ALREADY_IDENTIFIED, "You are already Identified.")
                    return
                self.identify_attempts += 1
                if d.get("rpcVersion") != 1:
                    await ws.close(CLOSE_UNSUPPORTED_RPC_VERSION, "Your requested RPC version is not supported.")
                    return
                if self.password is not None:
                    secret = base64.b64encode(hashlib.sha256((self.password + salt).encode()).digest())
                    expected = base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()
                    if d.get("authentication") != expected:
                        self.auth_failures += 1
                        await ws.close(CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
                        return
                session.subscriptions = int(d.get("eventSubscriptions", 0x7FF))
                session.identified = True
                await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
            elif not session.identified:
                await ws.close(CLOSE_NOT_IDENTIFIED, "You must identify before sending other messages.")
                return
            elif op == 6:
                await self._request(ws, d)
            else:
                await ws.close(CLOSE_UNKNOWN_OPCODE, f"Unknown OpCode: {op}")
                return

    async def _request(self, ws: ServerConnection, d: dict[str, Any]) -> None:
        request_type = str(d.get("requestType", ""))
        request_id = d.get("requestId")
        data = d.get("requestData") or {}
        with self._lock:
            self.requests.append((request_type, data))
        handler: Callable[[dict[str, Any]], Awaitable[tuple[int, str, dict[str, Any] | None]]] | None = {
            "GetVersion": self._get_version,
            "GetCurrentProgramScene": self._get_current_program_scene,
            "GetSceneList": self._get_scene_list,
            "GetInputList": self._get_input_list,
            "GetSourceScreenshot": self._get_source_screenshot,
            # the actions service's OBS actions
            "GetReplayBufferStatus": self._get_replay_buffer_status,
            "SaveReplayBuffer": self._save_replay_buffer,
            "SetCurrentProgramScene": self._set_current_program_scene,
            **({"CreateRecordChapter": self._create_record_chapter} if self.record_chapters else {}),
        }.get(request_type)
        if handler is None:
            code, comment, response = UNKNOWN_REQUEST_TYPE, f"Your request type is not valid: {request_type}", None
        else:
            code, comment, response = await handler(data)
        status: dict[str, Any] = {"result": code == SUCCESS, "code": code}
        if comment:
            status["comment"] = comment
        body: dict[str, Any] = {"requestType": request_type, "requestId": request_id, "requestStatus": status}
        if response is not None:
            body["responseData"] = response
        await ws.send(json.dumps({"op": 7, "d": body}))

    async def _get_version(self, _data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        return SUCCESS, "", {
            "obsVersion": "29.0.2-fake",
            "obsWebSocketVersion": self.version,
            "rpcVersion": 1,
            "availableRequests": ["GetVersion", "GetSourceScreenshot"],
            "supportedImageFormats": ["bmp", "jpeg", "jpg", "png"],
            "platform": "linux",
            "platformDescription": "test server",
        }

    async def _get_replay_buffer_status(self, _data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        if not self.replay_buffer_enabled:
            return INVALID_RESOURCE_STATE, "Replay buffer is not available.", None
        return SUCCESS, "", {"outputActive": self.replay_buffer_active}

    async def _save_replay_buffer(self, _data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        if not self.replay_buffer_enabled:
            return INVALID_RESOURCE_STATE, "Replay buffer is not available.", None
        if not self.replay_buffer_active:
            return OUTPUT_NOT_RUNNING, "", None  # OBS 29 sends no comment with it
        with self._lock:
            self.replays_saved += 1
        return SUCCESS, "", None

    async def _create_record_chapter(self, data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        if not self.recording:
            return OUTPUT_NOT_RUNNING, "Record output is not active.", None
        with self._lock:
            self.chapters.append(str(data.get("chapterName", "")))
        return SUCCESS, "", None

    async def _set_current_program_scene(self, data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        name = data.get("sceneName")
        with self._lock:
            known = name in self.sources and self.sources[name].is_scene
        if not known:
            return RESOURCE_NOT_FOUND, f"No source was found by the name of `{name}`.", None
        self.program_scene = str(name)
        return SUCCESS, "", None

    async def _get_current_program_scene(self, _data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        return SUCCESS, "", {"currentProgramSceneName": self.program_scene}

    async def _get_scene_list(self, _data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        with self._lock:
            scenes = [s.name for s in self.sources.values() if s.is_scene]
        return SUCCESS, "", {
            "currentProgramSceneName": self.program_scene,
            "currentPreviewSceneName": None,
            # obs-websocket lists scenes bottom-up, with sceneIndex
            "scenes": [{"sceneIndex": i, "sceneName": n} for i, n in enumerate(reversed(scenes))],
        }

    async def _get_input_list(self, _data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        with self._lock:
            inputs = [s for s in self.sources.values() if not s.is_scene]
        return SUCCESS, "", {
            "inputs": [
                {"inputName": s.name, "inputKind": s.kind, "unversionedInputKind": s.kind} for s in inputs
            ]
        }

    async def _get_source_screenshot(self, data: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
        name = data.get("sourceName")
        fmt = data.get("imageFormat")
        if not name:
            return MISSING_REQUEST_FIELD, "Your request is missing the `sourceName` field.", None
        if not fmt:
            return MISSING_REQUEST_FIELD, "Your request is missing the `imageFormat` field.", None
        if fmt not in ("jpg", "jpeg", "png", "bmp"):
            return INVALID_REQUEST_FIELD, f"Your specified image format is invalid or not supported: {fmt}", None
        width = data.get("imageWidth")
        height = data.get("imageHeight")
        for value, field_name in ((width, "imageWidth"), (height, "imageHeight")):
            if value is not None and not 8 <= int(value) <= 4096:
                return REQUEST_FIELD_OUT_OF_RANGE, f"The field value of `{field_name}` is out of range.", None
        quality = int(data.get("imageCompressionQuality", -1))
        if not -1 <= quality <= 100:
            return REQUEST_FIELD_OUT_OF_RANGE, "The field value of `imageCompressionQuality` is out of range.", None
        with self._lock:
            source = self.sources.get(str(name))
            image = None if source is None else source.image
        if source is None:
            return RESOURCE_NOT_FOUND, f"No source was found by the name of `{name}`.", None
        if image is None:
            return INVALID_RESOURCE_TYPE, "The specified source is not a video source.", None
        if source.render_fails:
            return REQUEST_PROCESSING_FAILED, "Failed to render screenshot.", None
        if self.screenshot_delay_s:
            await asyncio.sleep(self.screenshot_delay_s)
        encoded = await asyncio.get_running_loop().run_in_executor(
            None, _encode, image, str(fmt), width, height, quality
        )
        return SUCCESS, "", {"imageData": f"data:image/{fmt};base64," + base64.b64encode(encoded).decode()}


def _encode(
    image: npt.NDArray[np.uint8], fmt: str, width: int | None, height: int | None, quality: int
) -> bytes:
    h, w = image.shape[:2]
    if width and height:
        size = (int(width), int(height))  # both given: stretched to exactly that size
    elif width:
        size = (int(width), max(1, round(h * int(width) / w)))
    elif height:
        size = (max(1, round(w * int(height) / h)), int(height))
    else:
        size = (w, h)
    if size != (w, h):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png", "bmp": ".bmp"}[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" and quality >= 0 else []
    ok, buf = cv2.imencode(ext, image, params)
    assert ok
    return bytes(buf.tobytes())
