"""OBS actions on a result: save the replay buffer, add a recording chapter, show a scene for a while.

Each is its own action (``obs-replay``, ``obs-chapter``, ``obs-scene``),
with its own record and dead letters, so a replay buffer that is not running
does not stop the scene switch. Results are rare, so each delivery opens its
own obs-websocket connection (same ``[obs]`` settings as capture, host, port
and password always given: obsws-python would otherwise read a
``config.toml``) and closes it; nothing has to be kept alive or reconnected.

OBS cannot drop a repeated request, so like chat these rely on the record
written before the event is acked (see :mod:`services.actions.delivery`).

What the real OBS 29.0.2 (obs-websocket 5.1.0) answers, as the e2e tests
found: a replay buffer not enabled in the profile is code 604 ("Replay buffer
is not available") for every replay request, a stopped one
``outputActive: false`` and 501 on ``SaveReplayBuffer``; ``SaveReplayBuffer``
answers at once and the clip is written about 0.6 s later;
``CreateRecordChapter`` is 204 (unknown request) before OBS 30.2; an unknown
scene is 600.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from obsws_python import ReqClient
from obsws_python.error import OBSSDKError, OBSSDKRequestError
from websocket import WebSocketException

from services.actions.delivery import PermanentError, RetryableError, StoppingError, Unasked
from services.actions.formatting import HEADLINE, EventContext
from services.common.config.settings import ObsActionSettings, ObsSettings
from services.common.contracts.messages import Outcome

log = logging.getLogger("owc.actions.obs")

# obs-websocket 5 RequestStatus codes
UNKNOWN_REQUEST_TYPE = 204
OUTPUT_NOT_RUNNING = 501
RESOURCE_NOT_FOUND = 600
INVALID_RESOURCE_STATE = 604

NOT_ENABLED = ("OBS's replay buffer is not enabled: enable it in Settings → Output → Replay Buffer, then start it "
               "(Controls → Start Replay Buffer), or set actions.obs.replay_buffer = false")
NOT_RUNNING = ("OBS's replay buffer is not running: start it (Controls → Start Replay Buffer; enable it "
               "in Settings → Output → Replay Buffer) or set actions.obs.replay_buffer = false")
# an OBS without chapters is asked again after this long (it may have been upgraded meanwhile)
CHAPTERS_RECHECK_S = 600.0

ClientFactory = Callable[[], Any]


def chapter_name(ctx: EventContext) -> str:
    """``VICTORY! 5W 3L 1D`` (the outcome and the counts after it)."""
    e = ctx.event
    c = e.counts
    head = HEADLINE[e.outcome] if e.outcome else e.type
    return f"{'[test] ' if ctx.test else ''}{head} {c.victories}W {c.defeats}L {c.draws}D"


def is_result(ctx: EventContext, events: list[str]) -> bool:
    """OBS reacts to results only: an outcome counted up, by one of the chosen event types (tests always)."""
    e = ctx.event
    return e.outcome is not None and e.delta > 0 and (ctx.test or e.type in events)


class _ObsAction:
    name = "obs"
    # never held for the stream delay: a scene is part of the picture, which OBS itself delays with the
    # stream; a chapter marks the local recording; a replay-buffer save a delay late would miss the moment
    delayed = False

    def __init__(self, obs: ObsSettings, settings: ObsActionSettings, stop: threading.Event,
                 client_factory: ClientFactory | None = None) -> None:
        self.obs = obs
        self.settings = settings
        self.stop = stop
        self._factory = client_factory or self._connect

    def describe(self) -> str:
        return f"{self.name} (ws://{self.obs.host}:{self.obs.port})"

    def wants(self, ctx: EventContext) -> bool:
        raise NotImplementedError

    def perform(self, ctx: EventContext) -> str:
        raise NotImplementedError

    def _connect(self) -> Any:
        logging.getLogger("obsws_python").setLevel(logging.CRITICAL)  # its INFO line shows the password
        password = self.obs.password.get_secret_value() if self.obs.password else ""
        return ReqClient(host=self.obs.host, port=self.obs.port, password=password, timeout=self.obs.timeout_s)

    @contextmanager
    def client(self) -> Iterator[Any]:
        try:
            client = self._factory()
        except OBSSDKRequestError:
            raise
        except OBSSDKError as exc:
            raise PermanentError(f"OBS refused the connection ({exc}): check obs.password") from None
        except (OSError, WebSocketException, ValueError) as exc:
            raise RetryableError(f"cannot reach OBS at ws://{self.obs.host}:{self.obs.port} ({exc})") from None
        try:
            yield client
        except OBSSDKRequestError as exc:
            raise PermanentError(f"OBS refused {exc.req_name} (code {exc.code}): {exc}") from None
        except (OSError, WebSocketException, OBSSDKError) as exc:
            raise RetryableError(f"the connection to OBS dropped ({exc})") from None
        finally:
            with suppress(OSError, WebSocketException):
                client.disconnect()

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.stop.wait(seconds):
            raise StoppingError("stopping")


class ObsReplayAction(_ObsAction):
    name = "obs-replay"

    def wants(self, ctx: EventContext) -> bool:
        return self.settings.replay_buffer and is_result(ctx, list(self.settings.events))

    def perform(self, ctx: EventContext) -> str:
        self._wait(self.settings.replay_delay_s)  # the banner must be inside the saved clip
        with self.client() as obs:
            try:
                status = obs.send("GetReplayBufferStatus", raw=True) or {}
                if not status.get("outputActive"):
                    raise PermanentError(NOT_RUNNING)
                obs.send("SaveReplayBuffer")
            except OBSSDKRequestError as exc:
                if exc.code == INVALID_RESOURCE_STATE:  # no replay buffer in this profile
                    raise PermanentError(NOT_ENABLED) from None
                if exc.code == OUTPUT_NOT_RUNNING:  # stopped between the two requests
                    raise PermanentError(NOT_RUNNING) from None
                raise
        return f"replay buffer saved {self.settings.replay_delay_s:g} s after the result"


class ObsChapterAction(_ObsAction):
    name = "obs-chapter"

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._unsupported_said = False
        self._unsupported_until = 0.0

    def wants(self, ctx: EventContext) -> bool:
        return self.settings.chapters and is_result(ctx, list(self.settings.events))

    def perform(self, ctx: EventContext) -> str:
        # an OBS without chapters is not asked (nor logged about) for every result, only now and then; decided
        # here, not in wants(): the dispatcher asks wants() before the earlier results were acted on
        if not ctx.test and self._clock() < self._unsupported_until:
            return Unasked("not supported by this OBS (not asked)")
        name = chapter_name(ctx)
        with self.client() as obs:
            try:
                obs.send("CreateRecordChapter", {"chapterName": name})
            except OBSSDKRequestError as exc:
                if exc.code == UNKNOWN_REQUEST_TYPE:
                    self._unsupported_until = self._clock() + CHAPTERS_RECHECK_S
                    if not self._unsupported_said:
                        self._unsupported_said = True
                        log.warning("obs-chapter: %s has no CreateRecordChapter (it needs OBS 30.2 or newer, "
                                    "recording as Hybrid MP4); no chapters are added", _version(obs))
                    return "not supported by this OBS"
                if exc.code == OUTPUT_NOT_RUNNING:
                    return "not recording"
                raise PermanentError(f"OBS refused the chapter: {exc}") from None
        self._unsupported_until = 0.0
        return f"chapter {name!r}"


def _version(obs: Any) -> str:
    """``OBS 29.0.2`` (or just ``this OBS`` when it will not say)."""
    try:
        version = (obs.send("GetVersion", raw=True) or {}).get("obsVersion")
    except (OBSSDKError, OSError, WebSocketException):
        version = None
    return f"OBS {version}" if version else "this OBS"


class ObsSceneAction(_ObsAction):
    name = "obs-scene"

    def scene_for(self, outcome: Outcome | None) -> str:
        s = self.settings
        return {"victory": s.scene_victory, "defeat": s.scene_defeat, "draw": s.scene_draw}.get(outcome or "", "")

    def wants(self, ctx: EventContext) -> bool:
        return bool(self.scene_for(ctx.event.outcome)) and is_result(ctx, list(self.settings.events))

    def perform(self, ctx: EventContext) -> str:
        scene = self.scene_for(ctx.event.outcome)
        with self.client() as obs:
            previous = (obs.send("GetCurrentProgramScene", raw=True) or {}).get("currentProgramSceneName")
            try:
                obs.send("SetCurrentProgramScene", {"sceneName": scene})
            except OBSSDKRequestError as exc:
                if exc.code == RESOURCE_NOT_FOUND:
                    raise PermanentError(f"OBS has no scene {scene!r} (actions.obs.scene_*)") from None
                raise PermanentError(f"OBS refused the scene switch: {exc}") from None
        try:
            self._wait(self.settings.scene_seconds)
        finally:
            # back to where the streamer was, unless they switched scenes themselves meanwhile
            if previous and previous != scene:
                with self.client() as obs:
                    now = (obs.send("GetCurrentProgramScene", raw=True) or {}).get("currentProgramSceneName")
                    if now == scene:
                        obs.send("SetCurrentProgramScene", {"sceneName": previous})
        return f"showed {scene!r} for {self.settings.scene_seconds:g} s"


def build_obs_actions(obs: ObsSettings, settings: ObsActionSettings, stop: threading.Event) -> list[_ObsAction]:
    actions: list[_ObsAction] = []
    if settings.replay_buffer:
        actions.append(ObsReplayAction(obs, settings, stop))
    if settings.chapters:
        actions.append(ObsChapterAction(obs, settings, stop))
    if settings.scene_victory or settings.scene_defeat or settings.scene_draw:
        actions.append(ObsSceneAction(obs, settings, stop))
    return actions
