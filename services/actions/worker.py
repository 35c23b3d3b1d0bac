"""The actions dispatcher: every channel's event log, consumer group ``actions``, each event to its actions' lanes.

One consumer name for the service (``actions-worker``): a restarted service
first re-reads the entries it had not acked. Each event is read once and put
on the queue of every action that takes it, due at once or, for a delayed
action, when viewers can see the banner (``actions.stream_delay_s``); the
same script acks it. Each action then works through its own queue on its own
thread (:mod:`services.actions.lanes`), so a slow webhook holds back neither
chat nor the next event of any other action. Counting never waits for any of
this: the state service only appends to the log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from services.actions import metrics as M
from services.actions.delivery import Action, Deliverer, RetryPolicy, StoppingError, context_from_record
from services.actions.formatting import EventContext
from services.actions.lanes import DISPATCH, Lane, cancelled_record, count_cancelled
from services.actions.schedule import Pending, correction_target, due_ms, may_correct
from services.common.config.settings import ActionsSettings
from services.common.contracts import health
from services.common.contracts.codec import text
from services.common.contracts.health import ActionsHealth
from services.common.contracts.keys import DEFAULT_CHANNEL, GROUP_ACTIONS, Keys, validate_channel
from services.common.contracts.messages import Event, MessageError
from services.common.infra.redisio import write_refusal
from services.common.infra.streams import Delivery, GroupConsumer, ensure_group, read_group

log = logging.getLogger("owc.actions")

CONSUMER = "actions-worker"
READ_COUNT = 20
BLOCK_MS = 500
CHANNELS_EVERY_S = 1.0
HEALTH_EVERY_S = 2.0
# Nothing read for QUIET_AFTER_S (between matches, nearly always): a blocking read waits up to QUIET_BLOCK_MS
# (a new event still wakes it at once; a retry queued from the admin page waits up to that long), new channels
# are looked for every QUIET_CHANNELS_EVERY_S (a new channel's group starts where the service did: nothing is
# missed) and the health record is written every QUIET_HEALTH_EVERY_S (TTL 30 s), or at once when the chat
# bot's status changes.
QUIET_AFTER_S = 5.0
QUIET_BLOCK_MS = 2000
QUIET_CHANNELS_EVERY_S = 5.0
QUIET_HEALTH_EVERY_S = 10.0


class ActionsWorker:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        settings: ActionsSettings,
        actions: Sequence[Action],
        extra_channels: Sequence[str] = (),
        health: Callable[[], dict[str, str | int | float | bool]] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self.actions = list(actions)
        self.by_name = {a.name: a for a in self.actions}
        self.extra_channels = list(extra_channels)
        self.health_extra = health or dict
        self.consumers: dict[str, GroupConsumer] = {}  # stream -> consumer
        self.processed = 0
        self._since = ""
        self._next_channels = 0.0
        self._next_health = 0.0
        self._health_sent: dict[str, str | int | float | bool] | None = None
        self._busy_at = time.monotonic()  # when an entry was last read or a retry taken
        self.lanes: dict[str, Lane] = {}
        self._dispatch = client.register_script(DISPATCH)

    # ------------------------------------------------------------------ channels

    def since_id(self) -> str:
        """The stream id this service acts from, fixed on its very first start."""
        if not self._since:
            first = f"{int(time.time() * 1000)}-0"
            self.client.set(self.keys.actions_since, first, nx=True)
            raw = self.client.get(self.keys.actions_since)
            self._since = text(raw or first)
        return self._since

    def _fix_since(self, stop: threading.Event) -> None:
        """:meth:`since_id` at start, waiting out a Redis that is restarting (it used to crash the service)."""
        while not stop.is_set():
            try:
                self.since_id()
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                log.warning("actions: Redis is unavailable (%s); retrying", exc)
                stop.wait(0.5)

    def refresh_channels(self) -> None:
        names = {text(m) for m in self.client.smembers(self.keys.channels)}
        names.update(self.extra_channels)
        for name in sorted(names):
            try:
                validate_channel(name)
            except ValueError:
                continue
            stream = self.keys.events(name)
            if stream in self.consumers:
                continue
            # a new group starts at the service's first start: a channel's history is never replayed
            ensure_group(self.client, stream, GROUP_ACTIONS, start_id=self.since_id())
            self.consumers[stream] = GroupConsumer(
                self.client, stream, GROUP_ACTIONS, CONSUMER, claim_idle_ms=30_000,
                max_deliveries=self.settings.max_deliveries,
            )
            log.info("actions: following %s", stream)

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, max_messages: int | None = None) -> int:
        deliverer = Deliverer(
            self.client, self.keys,
            RetryPolicy(self.settings.max_attempts, self.settings.retry_initial_s, self.settings.retry_max_s),
            stop, self.settings.dlq_maxlen,
        )
        self.lanes = {a.name: Lane(a, self.client, self.keys, deliverer) for a in self.actions}
        self._fix_since(stop)  # before anything can be missed: events from now on are this service's to act on
        names = ", ".join(self.actions_described()) or "none configured"
        delay = self.settings.stream_delay_s
        log.info("actions: starting; actions: %s%s", names,
                 f"; chat, webhooks and Twitch wait {delay:g} s (actions.stream_delay_s)" if delay else "")
        for lane in self.lanes.values():
            lane.start(stop)
        first = True
        refusing = ""  # why Redis refuses writes, while it does (said once)
        try:
            while not stop.is_set():
                try:
                    if max_messages is not None and self.processed >= max_messages:
                        if not any(self.client.hlen(lane.pending_key) for lane in self.lanes.values()):
                            break  # read enough, and every lane has acted on what it was given
                        stop.wait(0.2)
                        continue
                    if time.monotonic() >= self._next_channels:
                        self.refresh_channels()
                        self._next_channels = time.monotonic() + (
                            QUIET_CHANNELS_EVERY_S if self.quiet() else CHANNELS_EVERY_S)
                    if first:
                        unacked = self._read_own_pending()
                        self._say_unfinished(unacked)
                        for delivery in unacked:
                            self._handle(delivery)
                        first = False
                    self.step()
                    self._process_retry()
                    if time.monotonic() >= self._next_health or self.health_extra() != self._health_sent:
                        self._publish_health()
                        self._next_health = time.monotonic() + (
                            QUIET_HEALTH_EVERY_S if self.quiet() else HEALTH_EVERY_S)
                    if refusing:
                        log.info("actions: Redis writes again")
                        refusing = ""
                except StoppingError:
                    break
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                    log.warning("actions: Redis is unavailable (%s); retrying", exc)
                    self.consumers = {}
                    first = True
                    stop.wait(0.5)
                except redis.ResponseError as exc:
                    refused = write_refusal(exc)
                    if refused is None:
                        raise
                    if refused != refusing:
                        log.warning("actions: Redis refuses writes (%s); waiting, nothing is lost", refused)
                        refusing = refused
                    stop.wait(0.5)
        finally:
            stop.set()
            for lane in self.lanes.values():
                lane.wake.set()
                lane.join()  # an effect in flight finishes (each try has a deadline) and is recorded
        return self.processed

    def actions_described(self) -> list[str]:
        return [a.describe() for a in self.actions]

    def _read_own_pending(self) -> list[Delivery]:
        """Entries this consumer name read but never acked (the previous run died on them); one the
        service died on more than ``max_deliveries`` times is a poison event, dead-lettered."""
        out: list[Delivery] = []
        for consumer in self.consumers.values():
            before = consumer.dead_lettered
            out += consumer.read_own_pending(limit=1000, poison=True)
            M.EVENTS.labels("invalid").inc(consumer.dead_lettered - before)
        return out

    def _say_unfinished(self, unacked: list[Delivery]) -> None:
        """One line at start: the events the previous run had read but not finished (unacked or queued)."""
        keys = {f"{self.keys.channel_of(d.stream)}/{text(d.id)}" for d in unacked}
        for lane in self.lanes.values():
            keys.update(text(k)
                        for k in self.client.hkeys(lane.pending_key))
        if keys:
            log.info("actions: finishing %d events the previous run had not finished", len(keys))

    def quiet(self) -> bool:
        """Nothing read (nor a retry taken) for :data:`QUIET_AFTER_S`: the loop slows down."""
        return time.monotonic() - self._busy_at >= QUIET_AFTER_S

    def step(self) -> None:
        for consumer in self.consumers.values():
            for delivery in consumer.reclaim(READ_COUNT):
                self._handle(delivery)
        block_ms = QUIET_BLOCK_MS if self.quiet() else BLOCK_MS
        if not self.consumers:
            time.sleep(block_ms / 1000)
            return
        for delivery in read_group(list(self.consumers.values()), READ_COUNT, block_ms):
            self._handle(delivery)

    def _handle(self, delivery: Delivery) -> None:
        self.processed += 1
        self._busy_at = time.monotonic()
        consumer = self.consumers[delivery.stream]
        channel = self.keys.channel_of(delivery.stream)
        try:
            event = Event.from_fields(delivery.fields, id=delivery.id)
        except MessageError as exc:
            M.EVENTS.labels("invalid").inc()
            consumer.dead_letter(delivery, str(exc))
            return
        ctx = EventContext(channel, event)
        eid = text(delivery.id)
        # a result imported from a recording (`owc scan --import`) happened in the past: no clip, no chat line
        wanted = [] if event.source == "import" else [a for a in self.actions if a.wants(ctx)]
        self.dispatch(ctx, wanted, ("xack", consumer.stream, eid))
        M.EVENTS.labels("handled").inc()

    def dispatch(self, ctx: EventContext, actions: Sequence[Action], source: tuple[str, str, str],
                 force: bool = False) -> list[str]:
        """Queue ``ctx`` on each action's lane and ack its ``source`` in one script; return the actions on which
        it was a correction that took a waiting result back (neither is sent).

        ``source``: ``("xack", stream, id)`` for an event of a log, ``("lrem", retry list, entry)`` for one
        queued by ``owc actions retry|test`` (sent at once, even if recorded as done).
        """
        now = int(time.time() * 1000)
        delay = self.settings.stream_delay_s
        keys: list[str] = [source[1], self.keys.action_inflight]
        args: list[str | int] = [source[0], GROUP_ACTIONS, source[2], ctx.idempotency_key,
                                 cancelled_record(ctx.idempotency_key, now), "1" if force else "0"]
        for action in actions:
            due = now if force else due_ms(ctx, action.delayed, delay)
            target = ""
            if action.delayed and delay > 0 and not force and not ctx.test and may_correct(ctx.event):
                target = correction_target(ctx, self.lanes[action.name].queued()) or ""
            keys += [self.keys.action_due(action.name), self.keys.action_pending(action.name),
                     self.keys.action_done(action.name)]
            args += [action.name, due, target, Pending(ctx, due, force).to_json()]
        raw: Any = self._dispatch(keys=keys, args=args)
        taken = [text(r) for r in raw or []]
        count_cancelled(taken)
        for name in taken:
            log.info("%s: %s (%s) takes back a result still inside the stream delay: neither is sent",
                     name, ctx.idempotency_key, ctx.event.type)
        for action in actions:
            self.lanes[action.name].wake.set()
        return taken

    def _process_retry(self) -> None:
        """One dead letter queued by ``owc actions retry`` (or a test), oldest first, onto its action's lane."""
        raw = self.client.lindex(self.keys.action_retry, -1)
        if raw is None:
            return
        try:
            letter = json.loads(raw)
            ctx = context_from_record(letter)
            action = self.by_name.get(str(letter.get("action")))
        except (ValueError, KeyError, TypeError, MessageError) as exc:
            log.error("actions: dropping an unreadable retry entry: %s", exc)
            self.client.lrem(self.keys.action_retry, -1, raw)  # type: ignore[arg-type]
            return
        entry = text(raw)
        if action is None:
            log.error("actions: retry for %r dropped: no such action is configured now", letter.get("action"))
            self.client.lrem(self.keys.action_retry, -1, raw)  # type: ignore[arg-type]
            return
        self._busy_at = time.monotonic()
        what = "sending test event" if ctx.test else "retrying event"
        log.info("%s: %s %s (queued by owc actions)", action.name, what, ctx.idempotency_key)
        self.dispatch(ctx, [action], ("lrem", self.keys.action_retry, entry), force=True)

    def _publish_health(self) -> None:
        self._health_sent = extra = self.health_extra()
        pipe = self.client.pipeline(transaction=False)  # one round trip for every action's dead letters
        for a in self.actions:
            pipe.llen(self.keys.action_dlq(a.name))
        dead = {a.name: int(n) for a, n in zip(self.actions, pipe.execute(), strict=True)}
        for name, count in dead.items():
            M.DEAD_LETTERS.labels(name).set(count)
        # every followed channel, and always `default`: the admin page's heartbeat of this service
        channels = {self.keys.channel_of(stream) for stream in self.consumers} | {DEFAULT_CHANNEL}
        record = ActionsHealth(actions=",".join(a.name for a in self.actions), dead_letters=sum(dead.values()))
        for channel in sorted(channels):
            health.publish(self.client, self.keys, channel, record.updated(**extra))


def caught_up(client: redis.Redis, keys: Keys, channel: str) -> bool:
    """Whether the actions service has finished every event of ``channel``'s log so far.

    True when the group ``actions`` has read up to the log's last entry, holds
    nothing unacknowledged, and no action's lane still has one of the channel's
    events queued (each action has recorded its result, dead letters included;
    with a stream delay, that is after the delay). ``owc demo --once`` waits
    (bounded) on this before it exits.
    """
    stream = keys.events(channel)
    try:
        groups = client.xinfo_groups(stream)
        info = client.xinfo_stream(stream)
    except redis.ResponseError:  # no log yet, or no group yet
        return False
    group = next((g for g in groups if g["name"] in (GROUP_ACTIONS, GROUP_ACTIONS.encode())), None)
    if group is None:
        return False
    last = info.get("last-generated-id") or b"0-0"
    read = group.get("last-delivered-id") or b"0-0"
    as_text = [text(v) for v in (last, read)]
    if as_text[0] != as_text[1] or int(group.get("pending", 0)) != 0:
        return False
    return not queued_in_lanes(client, keys, channel)


def queued_in_lanes(client: redis.Redis, keys: Keys, channel: str) -> int:
    """How many of ``channel``'s events the actions' lanes still have to act on (summed over the actions)."""
    total = 0
    for name in client.scan_iter(match=keys.action_pending("*"), count=100):
        total += sum(1 for k in client.hkeys(name) if text(k)
                     .startswith(f"{channel}/"))
    return total
