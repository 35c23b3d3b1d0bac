"""Layered configuration (pydantic-settings).

Precedence, lowest to highest: defaults < TOML file (``owc.toml`` in the
working directory, ``OWC_CONFIG``, or ``--config PATH``) < environment
(``OWC_…``, nested with ``__``: ``OWC_OBS__PASSWORD``) < command-line flags.

:func:`load_settings` returns the settings *and* where every value came
from, so ``owc config show`` can print it and a bad value can be reported in
one line naming the key, the source and what is allowed.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from services.common.keys import CHANNEL_RE
from services.common.redact import mask_credentials

ENV_PREFIX = "OWC_"
ENV_DELIMITER = "__"
DEFAULT_CONFIG_FILE = "owc.toml"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = PROJECT_ROOT / "models" / "victory_classifier.onnx"


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
    channel: str = Field("default", description="Channel this capture feeds.")
    source: str = Field(
        "obs", description="`obs`, or `replay:PATH` (a folder of images or a video file)."
    )
    interval_ms: int = Field(250, ge=20, le=60_000, description="Time between captures.")
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

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if not CHANNEL_RE.fullmatch(v):
            raise ValueError("use 1-64 letters, digits, '-' or '_'")
        return v


class InferenceSettings(_Section):
    model: Path = Field(DEFAULT_MODEL, description="ONNX model; its .json metadata sits beside it.")
    providers: list[str] = Field(
        default_factory=lambda: ["cpu"],
        description="Execution providers in order of preference: cpu, cuda, directml, coreml.",
    )
    intra_op_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads per worker.")
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
    timeout_s: float = Field(5.0, gt=0, le=120, description="Per-request timeout.")
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
    counter_channel: str = Field("default", description="Which counter channel the bot posts and controls.")
    post_results: bool = Field(True, description="Post each result and correction in chat.")
    command_cooldown_s: float = Field(
        10.0, ge=0, le=3600, description="!wl / !record answer at most once per this many seconds."
    )
    command_timeout_s: float = Field(
        3.0, gt=0, le=60, description="How long a moderator command waits for the state service."
    )
    reconnect_max_s: float = Field(60.0, ge=1, description="Longest wait between reconnection attempts.")

    @field_validator("counter_channel")
    @classmethod
    def _counter_channel(cls, v: str) -> str:
        if not CHANNEL_RE.fullmatch(v):
            raise ValueError("use 1-64 letters, digits, '-' or '_'")
        return v


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
    metrics_port: int = Field(9104, ge=0, le=65535, description="/metrics port (0 = off).")
    chat: ChatSettings = Field(default_factory=ChatSettings)  # type: ignore[arg-type]
    obs: ObsActionSettings = Field(default_factory=ObsActionSettings)  # type: ignore[arg-type]
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


_toml_path: ContextVar[Path | None] = ContextVar("owc_toml_path", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
    )

    redis: RedisSettings = Field(default_factory=RedisSettings)  # type: ignore[arg-type]
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)  # type: ignore[arg-type]
    obs: ObsSettings = Field(default_factory=ObsSettings)  # type: ignore[arg-type]
    capture: CaptureSettings = Field(default_factory=CaptureSettings)  # type: ignore[arg-type]
    inference: InferenceSettings = Field(default_factory=InferenceSettings)  # type: ignore[arg-type]
    state: StateSettings = Field(default_factory=StateSettings)  # type: ignore[arg-type]
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)  # type: ignore[arg-type]
    log: LogSettings = Field(default_factory=LogSettings)  # type: ignore[arg-type]
    run: RunSettings = Field(default_factory=RunSettings)  # type: ignore[arg-type]
    actions: ActionsSettings = Field(default_factory=ActionsSettings)  # type: ignore[arg-type]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line to show the user."""


@dataclass(frozen=True)
class Loaded:
    settings: Settings
    sources: dict[str, str]  # dotted key -> "default" | "owc.toml" | "env OWC_…" | "flag"
    config_file: Path | None

    @property
    def config_dir(self) -> Path:
        if self.settings.gateway.config_dir is not None:
            return self.settings.gateway.config_dir
        return self.config_file.parent if self.config_file else home()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}".lower()
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"capture.interval_ms": 5}`` -> ``{"capture": {"interval_ms": 5}}``."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def env_var_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", ENV_DELIMITER).upper()


def home(env: Mapping[str, str] | None = None) -> Path:
    """The folder that holds ``owc.toml``, ``custom.css`` and ``data/``: ``OWC_HOME``, else the current one.

    Relative paths in the configuration (``redis.data_dir``) are taken from here, and
    ``owc run`` prints it at start, so a stack started from another folder never shows
    empty counts without saying where it looked.
    """
    value = (os.environ if env is None else env).get("OWC_HOME")
    return Path(value).expanduser() if value else Path.cwd()


def under_home(path: Path) -> Path:
    """``path`` itself when absolute, else taken from :func:`home`."""
    return path if path.is_absolute() else home() / path


def resolve_config_path(explicit: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """``--config`` wins, then ``OWC_CONFIG``, then ``owc.toml`` in :func:`home` if it exists."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} (from --config) does not exist")
        return path
    from_env = env.get("OWC_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file {from_env!r} (from OWC_CONFIG) does not exist")
        return path
    default = home(env) / DEFAULT_CONFIG_FILE
    return default if default.is_file() else None


def _describe_source(dotted: str, sources: Mapping[str, str]) -> str:
    src = sources.get(dotted)
    if src is None:
        # an error on a whole section (e.g. a section given as a scalar)
        src = next((s for k, s in sources.items() if k.startswith(dotted + ".")), "default")
    return src


def _first_error_line(exc: ValidationError, sources: Mapping[str, str]) -> str:
    err = exc.errors(include_url=False)[0]
    dotted = ".".join(str(p) for p in err["loc"])
    src = _describe_source(dotted, sources)
    value = err.get("input")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return f"invalid configuration: unknown key {dotted!r} (from {src}); see `owc config show`"
    shown = "***" if "password" in dotted or "token" in dotted else mask_credentials(repr(value))
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid configuration: {dotted} = {shown} (from {src}): {msg}{more}"


def load_settings(
    *,
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Loaded:
    """Build the effective settings and record where each value came from.

    ``overrides`` are command-line values as dotted keys (``{"capture.fps": 8}``).
    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    environ = dict(os.environ)
    path = resolve_config_path(config, environ)
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}

    sources: dict[str, str] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                toml_data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
        for key in _flatten(toml_data):
            sources[key] = str(path)
    env_keys = [k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() != "OWC_CONFIG"]
    for name in env_keys:
        dotted = name[len(ENV_PREFIX) :].lower().replace(ENV_DELIMITER.lower(), ".")
        sources[dotted] = f"environment variable {name.upper()}"
    for key in flags:
        sources[key] = "command line"

    token = _toml_path.set(path)
    try:
        settings = Settings(**unflatten(flags))
    except ValidationError as exc:
        raise ConfigError(_first_error_line(exc, sources)) from None
    except SettingsError as exc:
        cause = exc.__cause__
        raise ConfigError(
            f"invalid configuration: {exc}" + (f" ({cause})" if cause else "")
            + "; list values in environment variables are JSON, e.g. "
            + "OWC_INFERENCE__PROVIDERS='[\"cpu\"]'"
        ) from None
    finally:
        _toml_path.reset(token)

    effective = _flatten(settings.model_dump())
    resolved = {key: sources.get(key, "default") for key in effective}
    return Loaded(settings=settings, sources=resolved, config_file=path)


def _table(model: BaseModel, reveal_secrets: bool) -> dict[str, Any]:
    """A model inside a list as a TOML-able dict (unset values left out)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value() if reveal_secrets else "**********"
        elif isinstance(value, Path):
            value = str(value)
        out[name] = value
    return out


def leaf_items(settings: Settings, *, reveal_secrets: bool = False) -> list[tuple[str, Any]]:
    """Every setting as ``(dotted key, JSON-able value)``, secrets masked unless asked.

    Secrets are the ``SecretStr`` settings and credentials inside URLs (``redis.url``).
    """
    items: list[tuple[str, Any]] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            dotted = f"{prefix}{name}"
            if isinstance(value, BaseModel):
                walk(value, dotted + ".")
            elif isinstance(value, SecretStr):
                items.append((dotted, value.get_secret_value() if reveal_secrets else "**********"))
            elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
                # [[actions.webhooks]]: a list of tables, secrets masked like any other
                items.append((dotted, [_table(v, reveal_secrets) for v in value]))
            elif isinstance(value, Path):
                items.append((dotted, str(value)))
            elif isinstance(value, str) and not reveal_secrets:
                items.append((dotted, mask_credentials(value)))
            else:
                items.append((dotted, value))

    walk(settings, "")
    return items


def describe_fields() -> list[tuple[str, str, str, str]]:
    """``(dotted key, env var, default, description)`` for every setting (docs)."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model_cls: type[BaseModel], prefix: str, in_list: bool = False) -> None:
        for name, info in model_cls.model_fields.items():
            dotted = f"{prefix}{name}"
            ann = info.annotation
            env = "" if in_list else env_var_name(dotted)  # a table in a list has no variable of its own
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, dotted + ".", in_list)
                continue
            item = get_args(ann)[0] if get_origin(ann) is list and get_args(ann) else None
            if isinstance(item, type) and issubclass(item, BaseModel):
                # a list of tables ([[actions.webhooks]]): one row for the list, one per table key
                rows.append((dotted, env_var_name(dotted), "", (info.description or "") + " Environment: a JSON list."))
                walk(item, dotted + "[].", True)
                continue
            if info.is_required():
                rows.append((dotted, env, "required", info.description or ""))
                continue
            default = info.get_default(call_default_factory=True)
            if isinstance(default, Path):
                with contextlib.suppress(ValueError):
                    default = default.relative_to(PROJECT_ROOT)
            shown = "" if default is None else str(default)
            rows.append((dotted, env, shown, info.description or ""))

    walk(Settings, "")
    return rows
