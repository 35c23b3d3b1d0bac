"""The settings sections, one per service (the ``[section]`` tables of ``owc.toml``).

:mod:`services.common.config.settings` composes them into :class:`~services.common.config.settings.Settings`
and loads them (defaults < ``owc.toml`` < ``OWC_…`` environment < flags).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.common.config.sections_twitch import TwitchSettings
from services.common.contracts.keys import CHANNEL_RE

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODEL = PROJECT_ROOT / "models" / "victory_classifier.onnx"


def _channel_name(v: str) -> str:
    if not CHANNEL_RE.fullmatch(v):
        raise ValueError("use 1-64 letters, digits, '-' or '_'")
    return v


ChannelName = Annotated[str, AfterValidator(_channel_name)]
"""A setting that names a counter channel (``capture.channel``, ``actions.chat.counter_channel``)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RedisSettings(_Section):
    url: str | None = Field(
        None,
        description="Redis URL (redis://host:port/db). Empty: `owc run` starts an embedded "
        "redis-server and the services use it.",
    )
    prefix: str = Field("owc", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Key prefix.")
    data_dir: Path = Field(Path("data"), description="Embedded Redis: AOF data directory.")
    embedded_port: int = Field(
        6390, ge=0, le=65535, description="Embedded Redis port on 127.0.0.1 (0 = any free port)."
    )
    server_bin: str = Field("redis-server", description="Embedded Redis: the redis-server binary.")


class MetricsSettings(_Section):
    host: str = Field(
        "127.0.0.1", description="Address the services' /metrics endpoints bind to."
    )


class ObsSettings(_Section):
    host: str = Field("127.0.0.1", description="OBS host running obs-websocket 5.")
    port: int = Field(4455, ge=1, le=65535, description="obs-websocket port.")
    password: SecretStr | None = Field(None, description="obs-websocket server password.")
    source: str = Field(
        "", description="Source or scene to capture. Empty: the current program scene."
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Connect/request timeout.")


class CaptureSettings(_Section):
    channel: ChannelName = Field("default", description="Channel this capture feeds.")
    source: str = Field(
        "obs", description="`obs`, or `replay:PATH` (a folder of images or a video file)."
    )
    interval_ms: int = Field(250, ge=20, le=60_000, description="Time between captures.")
    burst: bool = Field(
        True,
        description="Take the next frame at once when inference sees a candidate (the confirming frame "
        "50 ms or more after the first instead of one interval later; never more frames than the interval's "
        "rate).",
    )
    image_format: Literal["jpg", "png"] = Field("jpg", description="Screenshot format.")
    width: int = Field(640, ge=8, le=4096, description="Screenshot width (OBS scales).")
    height: int = Field(360, ge=8, le=4096, description="Screenshot height (OBS scales).")
    quality: int = Field(80, ge=-1, le=100, description="JPEG quality (-1 = OBS default).")
    fps: float = Field(4.0, gt=0, le=240, description="Replay: frames per second of replay time.")
    speed: float = Field(1.0, gt=0, le=1000, description="Replay: wall-clock speed-up.")
    loop: bool = Field(False, description="Replay: start again at the end.")
    max_lag: int = Field(
        64, ge=1, description="Skip captures while more frames than this wait for inference."
    )
    frames_maxlen: int = Field(512, ge=16, description="Approximate length cap of owc:frames.")
    metrics_port: int = Field(9101, ge=0, le=65535, description="/metrics port (0 = off).")


class InferenceSettings(_Section):
    model: Path = Field(DEFAULT_MODEL, description="ONNX model; its .json metadata sits beside it.")
    providers: list[str] = Field(
        default_factory=lambda: ["cpu"],
        description="Execution providers in order of preference: cpu, cuda, directml, coreml.",
    )
    intra_op_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads per worker.")
    reader_threads: int = Field(
        2, ge=1, le=64,
        description="threads of the reader on a banner's frames: the list check's strips are read this many "
        "at a time, and a reading soon after one that named an outcome reads its wider crop beside the crop; "
        "with a free core two confirm a banner sooner for the same CPU and the same scores.",
    )
    batch_size: int = Field(8, ge=1, le=256, description="Frames read per XREADGROUP.")
    block_ms: int = Field(500, ge=1, le=10_000, description="XREADGROUP block time.")
    max_frame_age_ms: int = Field(2000, ge=100, description="Older frames are dropped unread.")
    claim_idle_ms: int = Field(
        1500,
        ge=100,
        description="Reclaim frames pending this long (a dead worker's); below max_frame_age_ms so "
        "they are still fresh when taken over.",
    )
    max_deliveries: int = Field(3, ge=1, le=100, description="Then the frame goes to the DLQ.")
    detframe_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, description="How long frames that showed a banner are kept."
    )
    labels_maxlen: int = Field(10_000, ge=100, description="Approximate length cap of owc:labels.")
    worker_name: str = Field("", description="Consumer name (empty: host-pid).")
    metrics_port: int = Field(9102, ge=0, le=65535, description="/metrics port (0 = off).")


class StateSettings(_Section):
    min_confidence: float = Field(0.9, ge=0, le=1, description="Outcome labels below are ignored.")
    required_consecutive: int = Field(
        2, ge=1, le=100, description="Frames of the same outcome needed to count a match."
    )
    max_gap_ms: int = Field(
        2000, ge=1, description="Max frame-time gap between frames of one streak."
    )
    cooldown_s: float = Field(180.0, ge=0, description="After a count, ignore labels this long.")
    required_none: int = Field(
        50, ge=0, description="Then wait for this many `none` frames before re-arming."
    )
    reorder_window_ms: int = Field(
        500, ge=0, le=10_000, description="Wait this long for a missing seq before skipping it."
    )
    lease_ttl_ms: int = Field(5000, ge=500, description="Single-writer lease time-to-live.")
    metrics_port: int = Field(9103, ge=0, le=65535, description="/metrics port (0 = off).")


class GatewaySettings(_Section):
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(3000, ge=1, le=65535, description="HTTP port.")
    admin_token: SecretStr | None = Field(
        None, description="If set, mutating requests need `Authorization: Bearer <token>`."
    )
    command_timeout_s: float = Field(
        3.0, gt=0, le=60, description="How long a request waits for the state service."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    sse_ping_s: float = Field(15.0, gt=0, description="SSE keep-alive interval.")
    config_dir: Path | None = Field(
        None, description="Where custom.css is read from (default: the config file's folder)."
    )


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")


class RunSettings(_Section):
    workers: int = Field(1, ge=1, le=32, description="Inference workers started by `owc run`.")
    restart_backoff_max_s: float = Field(
        10.0, gt=0, description="Longest wait before restarting a crashed service."
    )


ActionEventType = Literal["detected", "adjusted", "set", "undone", "session_started"]
ALL_ACTION_EVENTS: tuple[ActionEventType, ...] = ("detected", "adjusted", "set", "undone", "session_started")


def _all_action_events() -> list[ActionEventType]:
    return list(ALL_ACTION_EVENTS)


class WebhookSettings(_Section):
    url: SecretStr = Field(
        description="Where to POST (http/https). A secret: Discord's webhook URLs carry their token."
    )
    name: str = Field(
        "", pattern=r"^[A-Za-z0-9_-]{0,32}$",
        description="Name in logs, metrics and the dead-letter key (default: webhook-N, N from 1).",
    )
    preset: Literal["json", "discord", "streamerbot"] = Field(
        "json",
        description="Payload: `json` (the event as our JSON), `discord` (a message text) or "
        "`streamerbot` (Streamer.bot's HTTP server `DoAction` body).",
    )
    events: list[ActionEventType] = Field(
        default_factory=_all_action_events, description="Event types sent (default: all of them)."
    )
    channels: list[str] = Field(
        default_factory=list, description="Counter channels whose events are sent (default: all)."
    )
    secret: SecretStr | None = Field(
        None, description="If set, the body is signed: header `X-OWC-Signature-256: sha256=<hex HMAC-SHA256>`."
    )
    timeout_s: float = Field(
        5.0, gt=0, le=120,
        description="Total deadline of one try: connecting, sending and the answer (then retried with backoff).",
    )
    streamerbot_action: str = Field(
        "", description="preset `streamerbot`: the name of the Streamer.bot action to run."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        text = v.get_secret_value()
        if not text.startswith(("http://", "https://")) or len(text) < 10:
            raise ValueError("must be an http:// or https:// URL")
        return v


class ChatSettings(_Section):
    enabled: bool = Field(False, description="Run the Twitch chat bot.")
    server: str = Field("irc.chat.twitch.tv", description="IRC server (Twitch's by default).")
    port: int = Field(6697, ge=1, le=65535, description="IRC port (6697 with TLS, 6667 without).")
    tls: bool = Field(True, description="Connect with TLS.")
    nick: str = Field("", description="The bot account's login name (lower case on Twitch).")
    token: SecretStr | None = Field(
        None, description="The bot account's user access token (scopes chat:read chat:edit; `oauth:` optional)."
    )
    twitch_channel: str = Field(
        "", description="Twitch channel to join, without '#' (default: the bot's own nick)."
    )
    counter_channel: ChannelName = Field("default", description="Which counter channel the bot posts and controls.")
    post_results: bool = Field(True, description="Post each result and correction in chat.")
    command_cooldown_s: float = Field(
        10.0, ge=0, le=3600, description="!wl / !record answer at most once per this many seconds."
    )
    command_timeout_s: float = Field(
        3.0, gt=0, le=60, description="How long a moderator command waits for the state service."
    )
    reconnect_max_s: float = Field(60.0, ge=1, description="Longest wait between reconnection attempts.")


class ObsActionSettings(_Section):
    replay_buffer: bool = Field(
        False, description="Save OBS's replay buffer after each result (the buffer must be running in OBS)."
    )
    replay_delay_s: float = Field(
        5.0, ge=0, le=120, description="Wait this long after the result before saving, so the banner is in the clip."
    )
    chapters: bool = Field(
        False, description="Add a recording chapter named after the result (OBS 30.2+, Hybrid MP4 recordings)."
    )
    scene_victory: str = Field("", description="Scene to show after a victory (empty: none).")
    scene_defeat: str = Field("", description="Scene to show after a defeat (empty: none).")
    scene_draw: str = Field("", description="Scene to show after a draw (empty: none).")
    scene_seconds: float = Field(
        8.0, gt=0, le=600, description="How long that scene stays before the previous one comes back."
    )
    events: list[ActionEventType] = Field(
        default_factory=lambda: ["detected"],  # type: ignore[arg-type]
        description="Which events trigger the OBS actions (only results: an outcome counted +1).",
    )


class ActionsSettings(_Section):
    max_attempts: int = Field(5, ge=1, le=50, description="Tries per action and event, then the dead letters.")
    retry_initial_s: float = Field(1.0, gt=0, le=60, description="First wait between tries (then doubled).")
    retry_max_s: float = Field(30.0, gt=0, le=600, description="Longest wait between tries.")
    max_deliveries: int = Field(
        5, ge=1, le=100, description="An event the service itself fails on this often goes to <stream>:dlq."
    )
    dlq_maxlen: int = Field(1000, ge=10, description="Dead letters kept per action.")
    stream_delay_s: float = Field(
        0.0, ge=0, le=900,
        description="Your stream delay (OBS/Twitch): chat lines, webhooks and Twitch actions wait this long after "
        "the result, so viewers see the banner first; a correction inside it replaces the pending action.",
    )
    metrics_port: int = Field(9104, ge=0, le=65535, description="/metrics port (0 = off).")
    chat: ChatSettings = Field(default_factory=ChatSettings)  # type: ignore[arg-type]
    obs: ObsActionSettings = Field(default_factory=ObsActionSettings)  # type: ignore[arg-type]
    twitch: TwitchSettings = Field(default_factory=TwitchSettings)  # type: ignore[arg-type]
    # last: shown and saved as [[actions.webhooks]] tables after every plain key
    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="`[[actions.webhooks]]` tables: `url = \"…\"` is enough."
    )

    @field_validator("webhooks")
    @classmethod
    def _names(cls, v: list[WebhookSettings]) -> list[WebhookSettings]:
        out = [w if w.name else w.model_copy(update={"name": f"webhook-{i}"}) for i, w in enumerate(v, 1)]
        names = [w.name for w in out]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"webhook names must be unique: {', '.join(dupes)}")
        for w in out:
            if w.preset == "streamerbot" and not w.streamerbot_action:
                raise ValueError(f"{w.name}: preset streamerbot needs streamerbot_action (the action's name)")
        return out
