"""Command-line plumbing shared by every ``owc`` subcommand."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from services.common.config.settings import ConfigError, Loaded, Settings, env_var_name, load_settings
from services.common.infra.logs import setup_logging

if TYPE_CHECKING:
    import redis

    from services.common.contracts.keys import Keys


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with the configuration flags every command takes, run by ``handler``.

    Its long description (``owc NAME --help``) is the handler's docstring unless given.
    """
    parser = sub.add_parser(name, help=help, description=description or inspect.getdoc(handler))
    add_config_args(parser)
    parser.set_defaults(handler=handler)
    return parser


def add_service(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """``owc NAME`` runs a service (``--max-messages``, hidden, stops it after that many, for tests);
    ``owc NAME SUBCOMMAND`` runs one of its tools, added to the returned subparsers."""
    parser = add_command(sub, name, handler, help=help)
    parser.add_argument("--max-messages", type=int, default=None, help=argparse.SUPPRESS)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def channel_name(value: str) -> str:
    """``--channel`` values: a valid channel name, or argparse's clear error (exit 2)."""
    from services.common.contracts.keys import InvalidChannelError, validate_channel

    try:
        validate_channel(value)
    except InvalidChannelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_config_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="PATH", help="TOML config file (default: owc.toml in OWC_HOME, else here)")
    group.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="set_values",
        help="override any setting, e.g. --set capture.interval_ms=500 (repeatable)",
    )
    group.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _parse_value(text: str) -> Any:
    """Lists and tables are JSON (``["cuda","cpu"]``); anything else stays text.

    Text is what the settings models validate and coerce (``"500"`` -> 500,
    ``"true"`` -> True) — so a numeric password or channel name stays a string.
    """
    if text.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def overrides_from_args(args: argparse.Namespace, flags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``--set`` pairs plus the subcommand's own flags as dotted keys."""
    out: dict[str, Any] = {}
    for item in getattr(args, "set_values", []) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set expects KEY=VALUE (e.g. capture.interval_ms=500), got {item!r}")
        out[key.strip().lower()] = _parse_value(value)
    if getattr(args, "log_level", None):
        out["log.level"] = args.log_level
    for key, value in (flags or {}).items():
        if value is not None:
            out[key] = value
    return out


def load_from_args(args: argparse.Namespace, flags: Mapping[str, Any] | None = None) -> Loaded:
    """Load settings for a subcommand; on a bad value print one line and exit 2."""
    try:
        loaded = load_settings(config=getattr(args, "config", None), overrides=overrides_from_args(args, flags))
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(loaded.settings.log.level)
    return loaded


def passthrough_args(args: argparse.Namespace) -> list[str]:
    """The configuration flags to hand on to a child ``owc`` process."""
    out: list[str] = []
    if getattr(args, "config", None):
        out += ["--config", args.config]
    for item in getattr(args, "set_values", []) or []:
        out += ["--set", item]
    if getattr(args, "log_level", None):
        out += ["--log-level", args.log_level]
    return out


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """Dotted-key overrides as ``--set key=value`` flags for a child ``owc`` process."""
    out: list[str] = []
    for key, value in overrides.items():
        if value is None:
            continue
        text = json.dumps(value) if isinstance(value, bool | list | dict) else str(value)
        out += ["--set", f"{key}={text}"]
    return out


def child_environment(flags: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split flags meant for a child ``owc`` process into ``(argv, environment)``.

    Every ``--set key=value`` becomes the environment variable ``OWC_KEY__…=value``,
    which the child's settings read with the same meaning (JSON for lists). A
    process's command line is visible to every local user (``ps``) while its
    environment is readable by its own user only (``/proc/PID/environ`` is 0400),
    and settings hold secrets (``gateway.admin_token``, ``obs.password``, a
    password in ``redis.url``). ``--config`` and ``--log-level`` stay flags.
    """
    argv: list[str] = []
    env: dict[str, str] = {}
    items = iter(flags)
    for flag in items:
        if flag == "--set":
            key, _, value = next(items, "").partition("=")
            env[env_var_name(key.strip().lower())] = value
        elif flag in ("--config", "--log-level"):
            argv += [flag, next(items, "")]
        else:
            argv.append(flag)
    return argv, env


def redis_for(settings: Settings, timeout_s: float = 10.0, *, one_thread: bool = False) -> tuple[redis.Redis, Keys]:
    """A Redis client once the server answers (it may still be starting; else exit 1 with why) and the
    configured keys. Services wait longer (30 s: they may start with Redis) than one-shot commands.

    ``one_thread``: a client that keeps one connection for a service loop that is its only user
    (:func:`services.common.infra.redisio.connect`); should Redis go away between the wait and that connection,
    the pooled client it waited with is returned instead (it works the same, only a little dearer a command).
    """
    import redis as redis_lib

    from services.common.infra.redisio import RedisUnavailableError, connect, keys_for, wait_for_redis

    client = connect(settings)
    try:
        wait_for_redis(client, timeout_s)
    except RedisUnavailableError as exc:
        client.close()
        fail(str(exc), 1)
    if one_thread:
        try:
            kept = connect(settings, one_thread=True)
        except redis_lib.RedisError:
            return client, keys_for(settings)
        client.close()
        client = kept
    return client, keys_for(settings)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``owc: <message>`` on stderr and exit (no traceback)."""
    print(f"owc: {message}", file=sys.stderr)
    raise SystemExit(code)
