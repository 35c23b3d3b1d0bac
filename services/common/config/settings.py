"""Layered configuration (pydantic-settings).

Precedence, lowest to highest: defaults < TOML file (``owc.toml`` in the
working directory, ``OWC_CONFIG``, or ``--config PATH``) < environment
(``OWC_…``, nested with ``__``: ``OWC_OBS__PASSWORD``) < command-line flags.

:func:`load_settings` returns the settings *and* where every value came
from, so ``owc config show`` can print it and a bad value can be reported in
one line naming the key, the source and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from services.common.config.redact import mask_credentials
from services.common.config.sections import (
    DEFAULT_MODEL,
    PROJECT_ROOT,
    ActionsSettings,
    CaptureSettings,
    ChatSettings,
    GatewaySettings,
    InferenceSettings,
    LogSettings,
    MetricsSettings,
    ObsActionSettings,
    ObsSettings,
    RedisSettings,
    RunSettings,
    StateSettings,
    WebhookSettings,
    _Section,
)

ENV_PREFIX = "OWC_"
ENV_DELIMITER = "__"
DEFAULT_CONFIG_FILE = "owc.toml"
# OWC_ variables that are not settings: the home and config file, and the ones compose reads from
# .env (compose.yaml turns them into settings) or the test tiers read; every other OWC_ name must
# be a setting, or it is an "unknown key" like a misspelt TOML key
NOT_SETTINGS = frozenset({
    "OWC_HOME", "OWC_CONFIG",
    "OWC_ADMIN_TOKEN", "OWC_HTTP_BIND", "OWC_HTTP_PORT", "OWC_CONFIG_DIR", "OWC_IMAGE", "OWC_PREFIX",
    "OWC_LOG_LEVEL", "OWC_CHANNEL", "OWC_CAPTURE_SOURCE", "OWC_REPLAY_DIR",
    "OWC_TEST_CLIP", "OWC_SCREENSHOTS", "OWC_COMPOSE_CACHE",
})


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


def known_keys() -> list[str]:
    """Every dotted key a setting can be given under: the sections, their leaves, nested sections."""
    keys: list[str] = []

    def walk(model_cls: type[BaseModel], prefix: str) -> None:
        for name, info in model_cls.model_fields.items():
            dotted = f"{prefix}{name}"
            keys.append(dotted)
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, dotted + ".")

    walk(Settings, "")
    return keys


def did_you_mean(dotted: str, as_env: bool = False) -> str:
    """``; did you mean 'obs.password'?`` (or the variable's name), or nothing when nothing is close."""
    keys = known_keys()
    if as_env:
        names = [env_var_name(k) for k in keys]
        close = difflib.get_close_matches(env_var_name(dotted).replace("__", "_"),
                                          [n.replace("__", "_") for n in names], n=1, cutoff=0.75)
        match = next((n for n in names if n.replace("__", "_") == close[0]), None) if close else None
        return f"; did you mean {match}?" if match else ""
    close = difflib.get_close_matches(dotted, keys, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_environment(environ: Mapping[str, str]) -> None:
    """Every ``OWC_…`` variable must name a setting (or be one of :data:`NOT_SETTINGS`).

    pydantic-settings ignores a variable it has no field for, so ``OWC_OBS_PASSWORD`` (one
    underscore) would be dropped in silence: it gets the "unknown key" line a misspelt TOML key gets.
    """
    known = set(known_keys())
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_SETTINGS:
            continue
        dotted = upper[len(ENV_PREFIX):].lower().replace(ENV_DELIMITER, ".")
        if dotted not in known:
            hint = did_you_mean(dotted, as_env=True) or "; a section and its key are joined by two underscores"
            raise ConfigError(
                f"invalid configuration: unknown key {dotted!r} (from environment variable {upper}){hint}; "
                "see `owc config show`"
            )


def _first_error_line(exc: ValidationError, sources: Mapping[str, str]) -> str:
    err = exc.errors(include_url=False)[0]
    dotted = ".".join(str(p) for p in err["loc"])
    src = _describe_source(dotted, sources)
    value = err.get("input")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return (f"invalid configuration: unknown key {dotted!r} (from {src}){did_you_mean(dotted)}; "
                "see `owc config show`")
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
    check_environment(environ)
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


# the sections are defined in services.common.config.sections; the services import them from here
__all__ = [
    "DEFAULT_MODEL",
    "PROJECT_ROOT",
    "ActionsSettings",
    "CaptureSettings",
    "ChatSettings",
    "ConfigError",
    "GatewaySettings",
    "InferenceSettings",
    "Loaded",
    "LogSettings",
    "MetricsSettings",
    "ObsActionSettings",
    "ObsSettings",
    "RedisSettings",
    "RunSettings",
    "Settings",
    "StateSettings",
    "WebhookSettings",
    "_Section",
    "check_environment",
    "did_you_mean",
    "env_var_name",
    "home",
    "known_keys",
    "load_settings",
    "resolve_config_path",
    "under_home",
    "unflatten",
]
