"""Request and response models of the HTTP API (pydantic)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from services.common.contracts.messages import EventSource, EventType, Outcome, Phase
from services.gateway.modes import ModeCounts
from services.gateway.modes import Streak as Streak  # re-exported: defined there, as a mode has one too

# Counts and deltas in request bodies are JSON integers, as the OpenAPI schema's `integer` means
# them: `7` or `7.0` (a number with no fraction), never `true`, `"7"` or `7.5` (pydantic would
# otherwise take `true` as 1 and `"7"` as 7).
MAX_COUNT = 1_000_000
MAX_DELTA = 1000


def _json_integer(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _nonzero(v: int) -> int:
    if v == 0:
        raise ValueError("delta must not be 0")
    return v


Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT), BeforeValidator(_json_integer)]
NonZeroDelta = Annotated[
    int,
    Field(strict=True, ge=-MAX_DELTA, le=MAX_DELTA, json_schema_extra={"not": {"const": 0}}),
    BeforeValidator(_json_integer),
    AfterValidator(_nonzero),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectionOut(BaseModel):
    """What the detector saw on one frame it kept (an automatic detection or a near miss)."""

    channel: str
    frame_seq: int
    label: str
    confidence: float
    model: str
    captured_at: int
    stages: dict[str, Any] = Field(
        description="Each stage's scores: gate {score, threshold, probs}; reader {scores, words, text, accept, "
        "ms, near_miss} when the gate passed the frame to it."
    )


class EventOut(BaseModel):
    id: str = Field(description="Event-log stream id (also the SSE event id).")
    type: EventType
    outcome: Outcome | None
    delta: int
    victories: int
    defeats: int
    draws: int
    session: str
    source: EventSource
    confidence: float | None
    frame_seq: int | None
    captured_at: int | None
    request_id: str
    note: str
    undoes: str
    ts: int = Field(description="Epoch ms when the state service appended the event.")
    mode: str = Field("", description="The channel's mode at the time (mode_changed: the new one); \"\" = none.")


class SessionRef(BaseModel):
    id: str
    started_at: int | None


class NearMiss(BaseModel):
    """The latest frame where the reader saw an outcome word but not clearly enough to count it."""

    outcome: Outcome
    confidence: float
    frame_seq: int = Field(description="Its frame: /api/v1/channels/{ch}/detframe/{frame_seq}.jpg")
    captured_at: int
    text: str = Field(description="What the text recogniser spelled (informative only).")


class Health(BaseModel):
    obs_connected: bool | None = Field(description="None: no capture has reported for this channel.")
    capture_source: str | None
    last_frame_at: int | None
    last_frame_age_s: float | None
    last_seq: int | None
    capture_error: str | None
    capture_state: str | None = Field(
        None, description="What capture is doing: e.g. connected, reconnecting; `finished` once a replay has ended."
    )
    last_label: str | None
    last_confidence: float | None
    last_label_at: int | None
    model: str | None
    near_miss: NearMiss | None = Field(None, description="None until the detector had a near miss.")
    workers: int = Field(description="Inference workers running (a heartbeat in the last 15 s), frames or not.")
    state_alive: bool = Field(description="The state service has reported recently.")
    capture_held_back_s: float | None = Field(
        None, description="How long capture has been waiting for inference to catch up (None: it is not)."
    )
    redis_write_error: str | None = Field(
        None, description="Why Redis refuses writes (a full disk: counting is paused), None while it can write."
    )


class Status(BaseModel):
    channel: str
    victories: int
    defeats: int
    draws: int
    total: int
    win_rate: float | None = Field(description="Victories / total, None before the first match.")
    streak: Streak
    recent: list[Outcome] = Field(description="Last results of the session, oldest first.")
    phase: Phase | None = Field(description="None until the state service has written the channel.")
    cooldown_remaining_s: float
    session: SessionRef
    last_outcome: Outcome | None
    last_event_at: int | None
    last_event_id: str
    last_event: EventOut | None
    health: Health
    updated_at: int
    server_time: int
    mode: str = Field("", description="The current mode (\"\" = none); new sessions keep it.")
    by_mode: dict[str, ModeCounts] = Field(default_factory=dict, description="This session's counts per mode "
                                           "(\"\" = counted without a mode); they add up to the counts unless set. "
                                           "Each with the mode's own streak and last results.")


class StreamStatus(Status):
    """An SSE message: the full status, plus the event that caused it (none on connect)."""

    event: EventOut | None = None


class ChannelsOut(BaseModel):
    channels: list[str]


class HistoryOut(BaseModel):
    channel: str
    events: list[EventOut] = Field(description="Newest first.")
    next_before: str | None = Field(description="Pass as `before` for the next (older) page.")


class SessionOut(BaseModel):
    id: str
    started_at: int | None
    ended_at: int | None
    victories: int
    defeats: int
    draws: int
    total: int
    win_rate: float | None
    current: bool
    summary: dict[str, Any] = Field(description="The state service's own summary, as stored.")


class SessionsOut(BaseModel):
    channel: str
    sessions: list[SessionOut] = Field(description="Newest first.")


class AdjustIn(_Body):
    outcome: Outcome
    delta: NonZeroDelta = Field(1, description="Non-zero change to the count.")
    note: str = Field("", max_length=200)
    frame_seq: int | None = Field(
        None, ge=0, le=2**63 - 1,
        description="The frame this is about: a near miss counted by hand (its frame becomes a labelled "
        "sample for `owc collect`).",
    )


class SetIn(_Body):
    victories: Count
    defeats: Count
    draws: Count
    note: str = Field("", max_length=200)


class UndoIn(_Body):
    note: str = Field("", max_length=200)


class NewSessionIn(_Body):
    note: str = Field("", max_length=200)


class LegacyAdjustIn(BaseModel):
    """The prototype's body: ``{"outcome", "delta"}``; ``value`` is the older name of ``outcome``."""

    model_config = ConfigDict(extra="ignore")
    outcome: Outcome = Field(validation_alias=AliasChoices("outcome", "value"))
    delta: NonZeroDelta = Field(1, description="Non-zero change to the count.")


class LegacyInitializeIn(BaseModel):
    """All three counts are required: a body that names none of them (``{}``, a typo) must
    not silently set every count to 0."""

    model_config = ConfigDict(extra="forbid")
    victories: Count
    defeats: Count
    draws: Count


class CommandOut(BaseModel):
    ok: Literal[True] = True
    event_id: str
    status: Status


class LegacyStatus(BaseModel):
    victories: int
    defeats: int
    draws: int
    total: int
    win_rate: float | None
    last_outcome: Outcome | None
    timestamp: str = Field(description="ISO 8601 UTC time of the last change (or now, before any).")


class LastDeliveryOut(BaseModel):
    """An action's last delivery."""

    at: int | None = Field(description="Epoch ms.")
    ok: bool = Field(description="It worked (`status` `ok`).")
    status: str = Field(description="`ok`, or `dead`: given up on after its tries (it is in the dead letters).")
    result: str = Field(description="What the receiver answered (`HTTP 204`) or why it failed.")
    channel: str
    event_id: str
    event_type: str | None = Field(description="None in records written before the type was kept.")
    outcome: str | None
    test: bool = Field(description="A test event (`POST …/test`, `owc actions test`).")


class DeadLetterOut(BaseModel):
    """An event an action gave up on."""

    at: int | None = Field(description="Epoch ms when it gave up.")
    error: str
    channel: str
    event_id: str
    event_type: str | None
    outcome: str | None
    test: bool
    attempts: int | None


class ActionOut(BaseModel):
    name: str = Field(description="As in the settings, the logs and `owc actions --action NAME`.")
    kind: Literal["webhook", "discord", "streamerbot", "chat", "obs", "twitch", "other"]
    description: str = Field(description="What it does, in a sentence.")
    configured: bool = Field(description="This gateway's settings list it (else only the running service does).")
    last: LastDeliveryOut | None = Field(description="None: it never ran.")
    dead_letters: int = Field(description="Events it gave up on, waiting for a retry.")
    recent_dead_letters: list[DeadLetterOut] = Field(description="The newest few, newest first.")
    queued: int = Field(description="Retries and tests queued for it that the service has not sent yet.")


class ActionsServiceOut(BaseModel):
    running: bool = Field(description="`owc actions` reported in the last few seconds.")
    last_seen_at: int | None = Field(description="Epoch ms of its last report (None: never, or too long ago).")


class ChatBotOut(BaseModel):
    state: str = Field(description="`connected`, `auth_failed` (Twitch refused the token), `connecting`, "
                       "`disconnected` (reconnecting), `starting` or `stopped`.")
    channel: str | None = Field(description="The Twitch channel, e.g. `#mychannel`.")
    ok: bool = Field(description="In the channel.")


class ActionsOut(BaseModel):
    actions: list[ActionOut] = Field(description="Configured actions (empty: none is configured).")
    service: ActionsServiceOut
    chat: ChatBotOut | None = Field(description="The Twitch chat bot, as the running service reports it.")
    server_time: int


class ActionRetryIn(_Body):
    pass


class ActionTestIn(_Body):
    channel: str = Field(
        "default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="The counter channel it claims to come from.",
    )


class ActionQueuedOut(BaseModel):
    ok: Literal[True] = True
    action: str
    queued: int = Field(description="Letters queued (a test: 1).")
    event_id: str | None = Field(description="The test event's id (None for a retry).")
    service_running: bool
    detail: str = Field(description="What happens next, as a sentence.")


class FieldErrorOut(BaseModel):
    loc: list[str] = Field(description="Where: e.g. `[\"body\", \"delta\"]` or `[\"query\", \"limit\"]`.")
    msg: str
    type: str = Field(description="Pydantic's error type, e.g. `int_type`, `missing`.")


class ErrorOut(BaseModel):
    """Every error answer (4xx/5xx) of the API, 422 included."""

    detail: str = Field(description="What is wrong, as a sentence.")
    code: str | None = Field(None, description="A stable word for programs, e.g. `invalid`, `bad_host`.")
    errors: list[FieldErrorOut] | None = Field(None, description="422: each invalid field.")


class HealthzOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyzOut(BaseModel):
    status: Literal["ready"] = "ready"
    redis: str = Field(description="Redis server version.")


class TwitchTokenOut(BaseModel):
    state: str = Field(description="`ok`, `missing` (no sign-in yet), `refused` (revoked or expired), `scopes` "
                       "(a scope is missing), or `unknown` (the actions service has not checked yet).")
    login: str = Field(description="The Twitch account signed in (empty: none).")
    message: str = Field(description="One line: what is wrong and what to do.")
    ok: bool


class TwitchPredictionOut(BaseModel):
    status: str = Field(description="`opening`, `open`, `locked` (no more predictions; waiting for the result), "
                        "`resolved`, `cancelled` or `failed`.")
    id: str = Field(description="Twitch's prediction id (empty while opening or when it failed).")
    title: str
    opened_at: int = Field(description="Epoch ms of the create request.")
    locks_at: int = Field(description="Epoch ms when Twitch locks it.")
    result: str = Field(description="The counted outcome, or why it was cancelled or failed.")
    winner: str = Field(description="The winning outcome's title (resolved).")
    by: str = Field(description="Who opened it: `auto` (the counter re-armed), `admin`, `chat: <name>`.")
    updated_at: int


class TwitchOut(BaseModel):
    enabled: bool = Field(description="`actions.twitch.enabled` in this gateway's settings.")
    channel: str = Field(description="The counter channel whose matches are predicted and marked.")
    token: TwitchTokenOut
    markers: str = Field(description="`ok`, `offline` (Twitch refuses markers while not live) or empty.")
    markers_message: str
    prediction: TwitchPredictionOut | None = Field(description="The current or last prediction (None: none yet).")


class TwitchRequestIn(_Body):
    pass


class TwitchQueuedOut(BaseModel):
    ok: Literal[True] = True
    detail: str
    service_running: bool
