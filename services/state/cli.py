"""``owc state`` (the service), ``owc state export`` and ``owc state import``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from services.common.cli.cliargs import add_command, add_service, channel_name, fail, load_from_args, redis_for

if TYPE_CHECKING:
    import threading

    from services.common.config.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ssub = add_service(
        sub, "state", run_state,
        help="the counter: apply the counting rules to labels and admin commands (single writer)",
    )

    e = add_command(ssub, "export", run_export, help="print a session's events as CSV or JSONL")
    e.add_argument("--channel", type=channel_name, default="default", help="channel (default: default)")
    e.add_argument("--session", default="current", help="session id, `current` (default) or `all`")
    e.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    e.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")

    i = add_command(
        ssub, "import", run_import,
        help="restore an exported JSONL into an empty channel (needs a running `owc state`)",
    )
    i.add_argument("file", metavar="FILE", help="a JSONL written by `owc state export --format jsonl`")
    i.add_argument("--channel", type=channel_name, default="default", help="channel to restore into (must be empty)")
    i.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the state service")


def run_state(args: argparse.Namespace) -> int:
    """Run the state service: reads owc:labels and owc:commands, applies the counting rules, appends to the
    event log. One instance is active per Redis (a lease); more instances wait as hot standbys.
    Subcommands export and import a channel's history.
    """
    settings = load_from_args(args).settings

    import threading

    from services.common.infra.lifecycle import stop_on_signals
    from services.common.infra.metrics import serve_metrics

    stop = threading.Event()
    stop_on_signals(stop)
    serve_metrics(settings.metrics.host, settings.state.metrics_port, "state")
    serve_state(settings, stop, max_messages=args.max_messages)
    return 0


def serve_state(settings: Settings, stop: threading.Event, max_messages: int | None = None) -> None:
    """The state service's body until ``stop`` (its own process, or a thread of `owc run`)."""
    from services.state.worker import StateWorker

    # the worker's loop is the client's only user: one connection kept, no pool checkout a command
    client, keys = redis_for(settings, 30.0, one_thread=True)
    try:
        StateWorker(client, keys, settings).run(stop, max_messages=max_messages)
    finally:
        client.close()


def run_export(args: argparse.Namespace) -> int:
    settings = load_from_args(args).settings

    from services.common.contracts.export import to_csv, to_jsonl
    from services.state.history import session_events
    from services.state.rules import Rules
    from services.state.store import Lease, Store

    client, keys = redis_for(settings)
    store = Store(client, keys, Lease(client, keys.lease("state"), "export", 1000))
    events = store.read_events(args.channel)
    if args.session == "current":
        session = store.load(args.channel, Rules.from_settings(settings.state)).session
        events = session_events(events, session)
    elif args.session != "all":
        events = session_events(events, args.session)
        if not events:
            fail(f"channel {args.channel!r} has no session {args.session!r}", 1)
    text = to_csv(events) if args.format == "csv" else to_jsonl(events)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def run_import(args: argparse.Namespace) -> int:
    settings = load_from_args(args).settings

    import uuid

    from services.common.contracts.messages import MessageError
    from services.common.infra.command_client import CommandClient, new_command

    try:
        with open(args.file, encoding="utf-8") as fh:
            payload = fh.read()
    except OSError as exc:
        fail(f"cannot read {args.file!r}: {exc.strerror}")
    client, keys = redis_for(settings)
    cmd = new_command(args.channel, "import", args.timeout, request_id=f"import-{uuid.uuid4().hex}", payload=payload)
    try:
        reply = CommandClient(client, keys).send(cmd)
    except MessageError as exc:
        fail(f"the state service sent an unreadable reply ({exc})", 1)
    if reply is None:
        fail(f"no answer from the state service within {args.timeout:.0f}s: is `owc state` running?", 1)
    if not reply.ok:
        fail(reply.error, 1)
    print(f"imported into channel {args.channel!r} (event {reply.event_id})")
    return 0
