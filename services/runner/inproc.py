"""The stack process of one-process `owc run`: every service as a thread (started by the keeper).

Its settings come as the services' do: ``OWC_…`` variables (the Redis URL among them) and
``--config`` / ``--log-level``.
"""

from __future__ import annotations

import argparse
import sys
import threading

from services.common.cli.cliargs import add_config_args, load_from_args
from services.common.infra.lifecycle import stop_on_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="owc run (stack process)")
    add_config_args(parser)
    loaded = load_from_args(parser.parse_args(argv))
    stop = threading.Event()
    stop_on_signals(stop)
    from services.runner.stack import host_stack

    return host_stack(loaded, stop)


if __name__ == "__main__":
    sys.exit(main())
