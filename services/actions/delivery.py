"""Running one action for one event: dedupe, retries with backoff, the record, the dead letters.

The order is what makes a kill -9 safe:

1. the action's *done* hash already has the event's idempotency key: do
   nothing (a redelivery after a crash between the record and the ack);
2. perform the effect, retrying retryable failures with exponential backoff;
3. record the result (``ok`` or ``dead``, the dead letter pushed in the same
   MULTI/EXEC);
4. in the same transaction, the action's lane takes the event off its queue
   (:mod:`services.actions.lanes`; the event log's entry was acked when it
   was queued).

A crash between 2 and 3 repeats the effect once; webhooks carry the
idempotency key so receivers can drop the repeat. Chat cannot dedupe: its
window is the few microseconds between a sent line and the HSET. Redis being
down at step 3 does not widen that window: the effect is done, so its record
waits in memory until Redis answers again (:meth:`Deliverer._commit`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.actions import metrics as M
from services.actions.formatting import EventContext
from services.common.contracts import action_records
from services.common.contracts.keys import Keys
from services.common.contracts.messages import Event, StateSnapshot
from services.common.infra.redisio import write_refusal

log = logging.getLogger("owc.actions")

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
COMMIT_RETRY_S = 0.5

Writes = Callable[[Any], None]  # adds commands to a MULTI/EXEC pipeline


def _nothing(_pipe: Any) -> None:
    pass


class ActionError(Exception):
    """An action failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class RetryableError(ActionError):
    def __init__(self, message: str) -> None:
        super().__init__(message, True)


class PermanentError(ActionError):
    def __init__(self, message: str) -> None:
        super().__init__(message, False)


class Unasked(str):
    """A result for an effect that was deliberately not attempted (an OBS without chapters): recorded
    like any result, logged at DEBUG only, so a known "not supported" is not said again per event."""


class StoppingError(Exception):
    """The service is stopping during a backoff: leave the event unacked (it is redelivered)."""


class Action(Protocol):
    """One action: its own lane (queue, thread, record and dead letters) in the service.

    ``delayed``: whether its effect waits for ``actions.stream_delay_s`` (viewers would see it
    before the banner: chat, webhooks, Twitch), or goes out at once (OBS, whose picture is delayed
    with the stream, and whose replay buffer would miss the moment). ``perform`` runs on the
    action's own thread and must end within a bounded time (a total deadline per try).
    """

    name: str
    delayed: bool

    def describe(self) -> str:
        """The action in one phrase for the logs (no secrets)."""

    def wants(self, ctx: EventContext) -> bool:
        """Whether this action takes the event at all (type, channel, something to say).

        Asked when the event is queued, before the earlier events were acted on: a decision that
        depends on what the action did before belongs in ``perform``.
        """

    def perform(self, ctx: EventContext) -> str:
        """Do the effect; return a short description (``HTTP 204``); raise :class:`ActionError`."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 30.0


def event_record(ctx: EventContext) -> dict[str, Any]:
    """What a dead letter keeps of the event, enough to run the action again."""
    return action_records.event_record(ctx.channel, ctx.event, ctx.test)


def context_from_record(record: dict[str, Any]) -> EventContext:
    event = Event.from_fields(record["fields"], id=str(record["id"]))
    return EventContext(str(record["channel"]), event, bool(record.get("test", False)))


@dataclass(eq=False)
class Deliverer:
    """Runs an action for an event at most once per idempotency key (see the module doc)."""

    client: redis.Redis
    keys: Keys
    policy: RetryPolicy
    stop: threading.Event
    dlq_maxlen: int = 1000

    def already_done(self, action: Action, ctx: EventContext) -> bool:
        return bool(self.client.hexists(self.keys.action_done(action.name), ctx.idempotency_key))

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise StoppingError("stopping")

    def _perform_with_retries(self, action: Action, ctx: EventContext) -> str:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            M.DELIVERIES.labels(action.name, "retry").inc()
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s: event %s attempt %d failed (%s); trying again in %.1f s",
                        action.name, ctx.idempotency_key, state.attempt_number, exc, wait)

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=wait_exponential(multiplier=self.policy.initial_s, max=self.policy.max_s),
            retry=retry_if_exception_type(RetryableError),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        result = retrying(action.perform, ctx)
        return result if isinstance(result, str) else str(result)  # keeps an Unasked result as it is

    def deliver(
        self, action: Action, ctx: EventContext, *, force: bool = False, finish: Writes | None = None
    ) -> str:
        """Run ``action`` for ``ctx`` unless done already; return ``ok``, ``duplicate`` or ``dead``.

        ``finish`` adds writes to the transaction that records the result (the lane takes the entry
        off its queue there). Raises :class:`StoppingError` (and records nothing) when stopped
        during a backoff.
        """
        finish = finish or _nothing
        if not force and self.already_done(action, ctx):
            M.DELIVERIES.labels(action.name, "duplicate").inc()
            log.info("%s: event %s was already delivered; not repeating it", action.name, ctx.idempotency_key)
            self._commit(action, ctx, finish)
            return "duplicate"
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        try:
            result = self._perform_with_retries(action, ctx)
        except ActionError as exc:
            self._dead_letter(action, ctx, str(exc), now_ms, finish)
            return "dead"
        except StoppingError:
            raise
        except Exception as exc:  # a bug in one action must not stop the others or crash-loop the service
            log.exception("%s: failed on event %s", action.name, ctx.idempotency_key)
            self._dead_letter(action, ctx, f"internal error: {exc!r}", now_ms, finish)
            return "dead"
        elapsed = time.perf_counter() - started
        record = {"status": "ok", "result": result, "at": now_ms, "event": ctx.event.id, "channel": ctx.channel,
                  "type": ctx.event.type, "outcome": ctx.event.outcome, "test": ctx.test,
                  "seconds": round(elapsed, 3)}

        def write(pipe: Any) -> None:
            pipe.hset(self.keys.action_done(action.name), ctx.idempotency_key, json.dumps(record))
            pipe.hset(self.keys.action_status, action.name, json.dumps(record))
            finish(pipe)

        self._commit(action, ctx, write)
        M.DELIVERIES.labels(action.name, "ok").inc()
        M.DELIVERY_SECONDS.labels(action.name).observe(elapsed)
        log.log(logging.DEBUG if isinstance(result, Unasked) else logging.INFO,
                "%s: delivered event %s (%s) in %.2f s", action.name, ctx.idempotency_key, result, elapsed)
        return "ok"

    def _commit(self, action: Action, ctx: EventContext, write: Writes) -> list[Any]:
        """Write an effect's record in one MULTI/EXEC, waiting for Redis if it is down.

        The effect has happened: a record given up here would have the event
        acted on again after its redelivery (a second chat line, a second clip).
        So it is kept and written once Redis answers; only a stop gives up
        (:class:`StoppingError`: the event stays unacknowledged).
        """
        warned = False
        while True:
            try:
                pipe = self.client.pipeline(transaction=True)
                write(pipe)
                return list(pipe.execute())
            except (*REDIS_DOWN, redis.ResponseError) as exc:
                refused = write_refusal(exc)
                if isinstance(exc, redis.ResponseError) and refused is None:
                    raise
                if not warned:
                    warned = True
                    log.warning("%s: event %s is done but Redis %s; its record is kept until Redis can "
                                "write again", action.name, ctx.idempotency_key,
                                f"refuses writes: {refused}" if refused else f"is unavailable ({exc})")
            if self.stop.wait(COMMIT_RETRY_S):
                log.error("%s: stopping before Redis came back: event %s will be acted on again",
                          action.name, ctx.idempotency_key)
                raise StoppingError("stopping")

    def _dead_letter(self, action: Action, ctx: EventContext, error: str, now_ms: int, finish: Writes) -> None:
        letter = {"action": action.name, "error": error, "at": now_ms, "attempts": self.policy.max_attempts,
                  **event_record(ctx)}
        status = {"status": "dead", "result": error, "at": now_ms, "event": ctx.event.id, "channel": ctx.channel,
                  "type": ctx.event.type, "outcome": ctx.event.outcome, "test": ctx.test}
        dlq = self.keys.action_dlq(action.name)

        def write(pipe: Any) -> None:
            pipe.lpush(dlq, json.dumps(letter))
            pipe.ltrim(dlq, 0, self.dlq_maxlen - 1)
            pipe.hset(self.keys.action_done(action.name), ctx.idempotency_key, json.dumps(status))
            pipe.hset(self.keys.action_status, action.name, json.dumps(status))
            finish(pipe)
            pipe.llen(dlq)

        length = self._commit(action, ctx, write)[-1]
        M.DELIVERIES.labels(action.name, "dead").inc()
        M.DEAD_LETTERS.labels(action.name).set(int(length))
        log.error("%s: gave up on event %s: %s; it is in %s (`owc actions retry` sends it again)",
                  action.name, ctx.idempotency_key, error, dlq)


def queue_test(client: redis.Redis, keys: Keys, action: str, channel: str) -> str:
    """Queue a made-up victory, marked as a test, for the running service to send via ``action``
    (see :func:`services.common.contracts.action_records.make_test_letter`); return its event id."""
    raw = client.hgetall(keys.state(channel))
    snapshot = StateSnapshot.from_fields(raw) if raw else None
    event_id, letter = action_records.make_test_letter(action, channel, snapshot)
    client.lpush(keys.action_retry, letter)
    return event_id


def queue_retries(client: redis.Redis, keys: Keys, action: str) -> int:
    """Move an action's dead letters (oldest first) to the retry list the service works through."""
    moved: Any = client.eval(action_records.MOVE_DEAD_LETTERS, 2, keys.action_dlq(action), keys.action_retry)
    return int(moved)
