"""``owc actions`` (the service) and its tools: status, dead letters, retry."""

from __future__ import annotations

import argparse
import threading
from typing import TYPE_CHECKING

from services.common.cli.cliargs import add_command, add_service, channel_name, fail, load_from_args, redis_for
from services.common.contracts.codec import text

if TYPE_CHECKING:
    from services.actions.delivery import Action
    from services.common.config.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    asub = add_service(
        sub, "actions", run_actions,
        help="match-end automations: webhooks (Discord, Streamer.bot, your own), Twitch chat, OBS",
    )

    add_command(asub, "status", run_status, help="each action, its last delivery and its dead letters")

    d = add_command(asub, "dead-letters", run_dead_letters, help="print the dead letters (JSON lines, newest first)")
    d.add_argument("--action", help="only this action (default: all configured)")

    r = add_command(asub, "retry", run_retry, help="queue the dead letters again; the running service sends them")
    r.add_argument("--action", help="only this action (default: all configured)")

    add_command(
        asub, "twitch-login", run_twitch_login,
        help="sign in to Twitch (device code): predictions, markers, chat",
    )

    t = add_command(
        asub, "test", run_test,
        help="send a made-up victory, marked as a test, through the running service",
    )
    t.add_argument("--action", help="only this action (default: all configured)")
    t.add_argument("--channel", type=channel_name, default="default", help="counter channel it claims to come from")


def action_names(settings: Settings) -> list[str]:
    """The configured actions' names (:func:`services.common.contracts.action_records.configured_actions`)."""
    from services.common.contracts import action_records

    return action_records.action_names(settings.actions)


def build_actions(settings: Settings, stop: threading.Event) -> list[Action]:
    from services.actions.obs import build_obs_actions
    from services.actions.webhooks import WebhookAction

    actions: list[Action] = [WebhookAction(w) for w in settings.actions.webhooks]
    actions += build_obs_actions(settings.obs, settings.actions.obs, stop)
    return actions


def run_actions(args: argparse.Namespace) -> int:
    """Run the actions service: follows every channel's event log (consumer group `actions`) and runs the
    configured actions for each event, at least once, never twice where a record can prevent it.
    Subcommands show the status and the dead letters and send dead letters again.
    """
    settings = load_from_args(args).settings

    from services.common.infra.lifecycle import stop_on_signals
    from services.common.infra.metrics import serve_metrics

    problem = check_actions(settings)
    if problem:
        fail(problem)
    stop = threading.Event()
    stop_on_signals(stop)
    serve_metrics(settings.metrics.host, settings.actions.metrics_port, "actions")
    serve_actions(settings, stop, max_messages=args.max_messages)
    return 0


def check_actions(settings: Settings) -> str | None:
    """What is wrong with the actions' settings (one line), or None."""
    if settings.actions.chat.enabled:
        from services.actions.chat import check_chat_settings

        return check_chat_settings(settings.actions.chat)
    return None


FOLLOW_LOOK_S = 30.0  # how long a stale follower may linger (a look a second woke an idle stack each second)


def serve_actions(settings: Settings, stop: threading.Event, max_messages: int | None = None) -> None:
    """The actions service's body until ``stop`` (its own process, or a thread of `owc run`).

    Its helpers (the chat bot, OBS connections) follow a stop event of their own, set when this
    returns: a restart inside one process never leaves the previous run's threads behind.
    """
    from services.actions.worker import ActionsWorker

    own_stop = threading.Event()

    def follow() -> None:
        # a stop wakes it at once; the timeout only ends a follower whose run ended without one (a restart in
        # one process), a while later: it would only set an event that is set already
        while not stop.wait(FOLLOW_LOOK_S):
            if own_stop.is_set():
                return
        own_stop.set()

    threading.Thread(target=follow, daemon=True, name="actions-stop").start()
    client, keys = redis_for(settings, 30.0)
    actions = build_actions(settings, own_stop)
    extra: list[str] = []
    health = None
    bot = None
    try:
        if settings.actions.chat.enabled:
            from services.actions.chat import ChatAction, ChatBot

            bot = ChatBot(settings.actions.chat, client, keys, delay_s=settings.actions.stream_delay_s)
            bot.start(own_stop)
            actions.append(ChatAction(bot))
            extra.append(settings.actions.chat.counter_channel)
            health = bot.health
        if settings.actions.twitch.enabled:
            from services.actions.twitch.service import start_twitch

            actions += start_twitch(settings.actions.twitch, client, keys, own_stop, bot)
        worker = ActionsWorker(client, keys, settings.actions, actions, extra, health)
        worker.run(own_stop, max_messages=max_messages)
    finally:
        own_stop.set()
        if bot is not None:
            bot.join(5.0)
        for action in actions:
            close = getattr(action, "close", None)
            if close is not None:
                close()
        client.close()


def run_twitch_login(args: argparse.Namespace) -> int:
    from services.actions.twitch.login import run_login

    return run_login(args)


def run_status(args: argparse.Namespace) -> int:
    settings = load_from_args(args).settings
    from services.common.contracts.action_records import LastDelivery

    client, keys = redis_for(settings)
    names = action_names(settings)
    if not names:
        print("no actions configured (see docs/actions.md)")
    for name in names:
        last = LastDelivery.from_json(client.hget(keys.action_status, name))
        dead = int(client.llen(keys.action_dlq(name)))
        text = "never ran" if last is None else last.describe()
        print(f"{name}: {text}; dead letters: {dead}")
    if settings.actions.twitch.enabled:
        from services.actions.twitch.service import status_lines

        for line in status_lines(client, keys, settings.actions.twitch.counter_channel):
            print(line)
    return 0


def _selected(settings: Settings, action: str | None) -> list[str]:
    names = action_names(settings)
    if action is None:
        return names
    if action not in names:
        fail(f"no action named {action!r} is configured (configured: {', '.join(names) or 'none'})")
    return [action]


def run_dead_letters(args: argparse.Namespace) -> int:
    settings = load_from_args(args).settings

    client, keys = redis_for(settings)
    for name in _selected(settings, args.action):
        for raw in client.lrange(keys.action_dlq(name), 0, -1):
            print(text(raw))
    return 0


def run_retry(args: argparse.Namespace) -> int:
    settings = load_from_args(args).settings
    from services.actions.delivery import queue_retries

    client, keys = redis_for(settings)
    total = 0
    for name in _selected(settings, args.action):
        moved = queue_retries(client, keys, name)
        if moved:
            print(f"{name}: {moved} dead letters queued again")
        total += moved
    if not total:
        print("no dead letters")
    return 0


def run_test(args: argparse.Namespace) -> int:
    settings = load_from_args(args).settings
    from services.actions.delivery import queue_test

    names = _selected(settings, args.action)
    if not names:
        fail("no actions configured (see docs/actions.md)")
    client, keys = redis_for(settings)
    for name in names:
        eid = queue_test(client, keys, name, args.channel)
        print(f"{name}: test event {args.channel}/{eid} queued; the running `owc actions` sends it "
              "(`owc actions status` shows the result)")
    return 0
