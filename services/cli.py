"""The ``owc`` command: one entry point, a subcommand per service and tool.

Each package registers its own subcommands (``register(subparsers)`` in its
``cli`` module) and imports its heavy dependencies only when it runs, so
``owc --help`` and ``owc config show`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules with ``register(sub)``; optional ``register_bench(bench_sub)``.
COMMAND_MODULES = (
    "services.runner.cli",
    "services.capture.cli",
    "services.inference.cli",
    "services.state.cli",
    "services.gateway.cli",
    "services.actions.cli",
    "services.common.config_cli",
    "training.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="owc",
        description="OW Victory Counter: a self-counting Victory / Defeat / Draw overlay for OBS.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser("bench", help="measure a part of the pipeline (see `owc bench -h`)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="WHAT")
    def _usage(_args: argparse.Namespace) -> int:
        bench.print_help()
        return 2

    bench.set_defaults(handler=_usage)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
