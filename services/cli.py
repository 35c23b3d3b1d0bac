"""The ``owc`` command: one entry point, a subcommand per service and tool.

Each package registers its own subcommands (``register(subparsers)`` in its
``cli`` module) and imports its heavy dependencies only when it runs, so
``owc --help`` and ``owc config show`` stay fast.

The service commands come from ``services/`` alone, which is all the Docker
image ships. Tool commands from a full checkout (``tools/``: the benches,
``training/``) are registered when their package is there; when it is not (the
image), the command still shows in ``--help`` and says what to do instead of
crashing the whole CLI.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from services.common.infra.lifecycle import hold_stop_signals

# Modules with ``register(sub)`` and/or ``register_bench(bench_sub)``.
COMMAND_MODULES = (
    "services.runner.cli",
    "services.capture.cli",
    "services.inference.cli",
    "services.state.cli",
    "services.gateway.cli",
    "services.actions.cli",
    "services.common.cli.config_cli",
    "services.scan.cli",
)

# Modules outside ``services/``: module -> (its top-level package, the commands it registers;
# "bench X" is ``owc bench X``).
OPTIONAL_COMMAND_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tools.cli": ("tools", ("bench e2e", "bench resources", "bench capture", "bench inference", "bench gateway")),
    "training.cli": ("training", ("collect",)),
}


def _unavailable(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], command: str, package: str
) -> None:
    """A stand-in for a command whose package is not installed: it explains, exits 2.

    ``sub`` holds the command's last word (``owc bench X``: ``sub`` is the bench subparsers).
    """
    message = (
        f"owc {command}: the `{package}` package is not installed here (the Docker image ships only the "
        f"services). Run it from a checkout of the project: `make setup`, then `.venv/bin/owc {command}`."
    )
    # no prefix characters: every argument, `--frames 200` too, lands in `rest`, so the stand-in
    # explains whatever options follow instead of failing on them
    p = sub.add_parser(
        command.split()[-1],
        help=f"(needs the {package} package: not installed here)",
        add_help=False,
        prefix_chars="\0",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def handler(_args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    p.set_defaults(handler=handler)


def _import_optional(name: str, package: str) -> ModuleType | None:
    """The module, or None only when its own top-level package is missing (any other error propagates)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == package or exc.name == name:
            return None
        raise


def _version() -> str:
    """The installed distribution's version, and the shipped detector's model id when it is there.

    Reads the model's metadata JSON directly: ``--version`` must not load the vision stack
    (OpenCV, numpy: +80 MB in every process that builds this parser).
    """
    import json
    from importlib import metadata

    from services.common.config.sections import DEFAULT_MODEL

    try:
        version = metadata.version("ow-victory-counter")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    try:
        model_id = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text(encoding="utf-8"))["model_id"]
    except (OSError, ValueError, KeyError, TypeError):  # no model next to this install: the version alone
        return version
    return f"{version} (detector {model_id})" if isinstance(model_id, str) and model_id else version


class _VersionAction(argparse.Action):
    """``--version``, its text built only when asked (the model's metadata is read then)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "show the version and exit") -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="owc",
        description="OW Victory Counter: a self-counting Victory / Defeat / Draw overlay for OBS.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser("bench", help="measure a part of the pipeline (see `owc bench -h`)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT")
    def _usage(_args: argparse.Namespace) -> int:
        bench.print_help()
        return 2

    bench.set_defaults(handler=_usage)
    modules = [importlib.import_module(name) for name in COMMAND_MODULES]
    for name, (package, commands) in OPTIONAL_COMMAND_MODULES.items():
        optional = _import_optional(name, package)
        if optional is not None:
            modules.append(optional)
        else:
            for command in commands:
                _unavailable(bench_sub if command.startswith("bench ") else sub, command, package)
    for module in modules:
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv)[:1] == ["run"]:
        # before anything slow: a Ctrl+C or SIGTERM while `owc run` starts is held for its keeper, not lost
        hold_stop_signals()
    # onnxruntime (1.29 on) sends usage telemetry to Microsoft from Linux and macOS too: a thread, a DNS
    # lookup and an upload attempt every few seconds, a device id in ~/.cache/Microsoft. Off for every
    # `owc` process and what it starts, unless the user set the variable themselves.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `owc config show | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
