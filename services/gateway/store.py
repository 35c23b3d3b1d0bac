"""Everything the gateway reads from Redis, as domain objects.

The gateway never writes state: :class:`GatewayStore` reads the snapshot
hash, the event log, sessions and health hashes and returns what the
services wrote (``Event``, ``StateSnapshot``, the health records, session
totals); :mod:`views` turns them into HTTP answers, and commands go through
:mod:`state_client`. Nothing here knows about HTTP.

The one thing it writes is the actions service's retry list (the admin
page's "retry dead letters" and "send a test event"), exactly as
``owc actions retry|test`` do, through :mod:`services.common.contracts.action_records`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from services.common.contracts import action_records
from services.common.contracts.action_records import DeadLetter, LastDelivery
from services.common.contracts.codec import text
from services.common.contracts.health import WORKER_ALIVE_MS, ActionsHealth, CaptureHealth, InferenceHealth, StateHealth
from services.common.contracts.keys import CHANNEL_RE, DEFAULT_CHANNEL, Keys
from services.common.contracts.messages import Counts, Event, MessageError, StateSnapshot
from services.common.contracts.sessions import SessionSummary
from services.common.infra.redisio import persistence_problem

log = logging.getLogger("owc.gateway")

EXPORT_CHUNK = 500


def parse_events(entries: list[Any]) -> list[Event]:
    """Stream entries ``[(id, fields), …]`` -> events; malformed entries are logged and skipped."""
    out: list[Event] = []
    for entry_id, fields in entries:
        try:
            out.append(Event.from_fields(fields, entry_id))
        except MessageError as exc:
            log.warning("skipping malformed event %s: %s", entry_id, exc)
    return out


@dataclass(frozen=True)
class PipelineHealth:
    """What the services last reported about a channel, as their own health records."""

    capture: CaptureHealth = field(default_factory=CaptureHealth)
    inference: InferenceHealth = field(default_factory=InferenceHealth)
    workers: int = 0  # inference workers with a heartbeat in the last WORKER_ALIVE_MS
    models: tuple[str, ...] = ()  # the models those workers loaded (from their heartbeat)
    state_alive: bool = False
    redis_write_error: str | None = None  # why Redis refuses writes, None while it can write


@dataclass(frozen=True)
class ChannelState:
    """A channel as of one read: its snapshot (None before the state service wrote it), the event
    the snapshot ends with, and the pipeline's health."""

    snapshot: StateSnapshot | None
    last_event: Event | None
    health: PipelineHealth


@dataclass(frozen=True)
class SessionTotals:
    """One session of a channel with its counts (the current one from the live snapshot)."""

    id: str
    started_at: int | None
    ended_at: int | None
    counts: Counts
    current: bool
    summary: dict[str, Any]  # the state service's own summary, as stored


def _totals(
    sid: str, summary: SessionSummary | None, stored: dict[str, Any], current: str, snap: StateSnapshot | None
) -> SessionTotals:
    """A session as the card shows it: its summary, the live snapshot's counts for the current one."""
    counts = summary.counts if summary else Counts()
    started = summary.started_at if summary else None
    ended = summary.ended_at if summary else None
    if sid == current and snap is not None:
        counts, started, ended = snap.counts, snap.session_started_at or started, None
    return SessionTotals(sid, started, ended, counts, sid == current, stored)


@dataclass(frozen=True)
class ActionRecords:
    """What Redis holds about one action: its last delivery, its dead letters, its queued retries."""

    name: str
    last: LastDelivery | None
    dead_letters: int
    recent_dead_letters: list[DeadLetter]
    queued: int


# Retry-list entries read to count each action's queued letters (the service empties it at once).
RETRY_SCAN = 1000


@dataclass(frozen=True)
class RedisCondition:
    version: str
    write_problem: str | None  # why Redis refuses writes (MISCONF), None while it can write


class GatewayStore:
    """The gateway's read side of Redis (one per app)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        # redis-py's async return types are unions over decode_responses; we always use bytes.
        self.r: Any = client
        self.keys = keys

    async def redis_condition(self) -> RedisCondition:
        """Raises RedisError / OSError when Redis is not reachable."""
        pipe = self.r.pipeline(transaction=False)
        pipe.info("server")
        pipe.info("persistence")
        server, persistence = await pipe.execute()
        return RedisCondition(str(server.get("redis_version", "?")), persistence_problem(persistence))

    async def channels(self) -> list[str]:
        members = await self.r.smembers(self.keys.channels)
        names = {text(m, "replace") for m in members} | {DEFAULT_CHANNEL}
        return sorted(n for n in names if CHANNEL_RE.fullmatch(n))

    async def channel_exists(self, channel: str) -> bool:
        if channel == DEFAULT_CHANNEL:
            return True
        if not CHANNEL_RE.fullmatch(channel):
            return False
        if await self.r.sismember(self.keys.channels, channel):
            return True
        return bool(await self.r.exists(self.keys.state(channel)))

    async def snapshot(self, channel: str) -> StateSnapshot | None:
        return self._parse_snapshot(channel, await self.r.hgetall(self.keys.state(channel)))

    @staticmethod
    def _parse_snapshot(channel: str, fields: dict[bytes, bytes]) -> StateSnapshot | None:
        if not fields:
            return None
        fields.pop(b"machine", None)
        try:
            return StateSnapshot.from_fields(fields)
        except MessageError as exc:
            log.warning("channel %s: unreadable state snapshot: %s", channel, exc)
            return None

    async def event(self, channel: str, event_id: str) -> Event | None:
        if not event_id:
            return None
        entries = await self.r.xrange(self.keys.events(channel), event_id, event_id)
        events = parse_events(entries)
        return events[0] if events else None

    async def events_after(self, channel: str, after: str, count: int | None = None) -> list[Event]:
        """Events with id strictly greater than ``after`` (``"0"`` = from the start), oldest first."""
        entries = await self.r.xrange(self.keys.events(channel), f"({after}" if after != "0" else "-", "+", count)
        return parse_events(entries)

    async def wait_for_events(self, channel: str, after: str, count: int, block_ms: int) -> tuple[str, list[Event]]:
        """Block up to ``block_ms`` for events after ``after``: ``(new position, events)``.

        The position moves past malformed entries too (they are logged and skipped).
        """
        response: Any = await self.r.xread({self.keys.events(channel): after}, count=count, block=block_ms)
        if not response:
            return after, []
        entries: list[Any] = response[0][1]
        return text(entries[-1][0]), parse_events(entries)

    async def history(self, channel: str, limit: int, before: str | None) -> list[Event]:
        top = f"({before}" if before else "+"
        entries = await self.r.xrevrange(self.keys.events(channel), top, "-", limit)
        return parse_events(entries)

    async def iter_events(self, channel: str) -> AsyncIterator[Event]:
        """The whole event log, oldest first, read in chunks."""
        low = "-"
        while True:
            entries = await self.r.xrange(self.keys.events(channel), low, "+", EXPORT_CHUNK)
            for event in parse_events(entries):
                yield event
            if len(entries) < EXPORT_CHUNK:
                return
            low = "(" + text(entries[-1][0])

    async def last_stream_id(self, channel: str) -> str:
        entries = await self.r.xrevrange(self.keys.events(channel), "+", "-", 1)
        return text(entries[0][0]) if entries else "0-0"

    def _queue_health(self, pipe: Any, channel: str) -> None:
        pipe.hgetall(self.keys.health(channel, CaptureHealth.SERVICE))
        pipe.hgetall(self.keys.health(channel, InferenceHealth.SERVICE))
        # the state service is alive while it holds its lease (renewed every second or so), whether
        # or not any frame has arrived yet; its per-channel record says the same once it has one
        pipe.exists(self.keys.health(channel, StateHealth.SERVICE), self.keys.lease("state"))
        pipe.zrangebyscore(self.keys.inference_workers, int(time.time() * 1000) - WORKER_ALIVE_MS, "+inf")
        pipe.hgetall(self.keys.inference_models)
        pipe.info("persistence")

    @staticmethod
    def _health_from(results: list[Any]) -> PipelineHealth:
        raw_capture, raw_inference, state_alive, workers, models, persistence = results
        alive = [] if isinstance(workers, Exception) else list(workers)
        loaded = {} if isinstance(models, Exception) else models
        return PipelineHealth(
            capture=CaptureHealth.from_fields(raw_capture) or CaptureHealth(),
            inference=InferenceHealth.from_fields(raw_inference) or InferenceHealth(),
            workers=len(alive),
            models=tuple(sorted({text(loaded[w], "replace") for w in alive if w in loaded})),
            state_alive=bool(state_alive),
            redis_write_error=None if isinstance(persistence, Exception) else persistence_problem(persistence),
        )

    async def health(self, channel: str) -> PipelineHealth:
        pipe = self.r.pipeline(transaction=False)
        self._queue_health(pipe, channel)
        return self._health_from(await pipe.execute(raise_on_error=False))

    async def channel_state(self, channel: str) -> ChannelState:
        """One round trip: snapshot, newest event, health hashes, inference consumers."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.keys.state(channel))
        pipe.xrevrange(self.keys.events(channel), "+", "-", 1)
        self._queue_health(pipe, channel)
        results = await pipe.execute(raise_on_error=False)
        for result in results[:2]:
            if isinstance(result, Exception):
                raise result
        snap = self._parse_snapshot(channel, results[0])
        newest = parse_events(results[1])
        last_event = None
        if snap is not None and snap.last_event_id:
            if newest and newest[0].id == snap.last_event_id:
                last_event = newest[0]
            else:  # the snapshot is not at the log's end (never in practice: same MULTI/EXEC)
                last_event = await self.event(channel, snap.last_event_id)
        return ChannelState(snap, last_event, self._health_from(results[2:]))

    async def detframe(self, channel: str, seq: int) -> bytes | None:
        data: Any = await self.r.get(self.keys.detframe(channel, seq))
        return bytes(data) if data is not None else None

    async def detection(self, channel: str, seq: int) -> dict[str, Any] | None:
        """What inference stored about a kept frame (its JSON object), None if absent or unreadable."""
        raw: Any = await self.r.get(self.keys.detinfo(channel, seq))
        if raw is None:
            return None
        try:
            info = json.loads(raw)
        except (ValueError, TypeError):  # written by another version: say nothing rather than fail
            return None
        return info if isinstance(info, dict) else None

    async def sessions(self, channel: str) -> list[SessionTotals]:
        """Sessions with totals, newest first: the summaries the state service keeps (it fills in
        missing ones when it loads a channel); the current one's counts from the snapshot."""
        raw: dict[bytes, bytes] = await self.r.hgetall(self.keys.sessions(channel))
        snap = await self.snapshot(channel)
        current = snap.session if snap else ""
        out: list[SessionTotals] = []
        for key, value in raw.items():
            sid = text(key, "replace")
            try:
                parsed = json.loads(value)
            except (json.JSONDecodeError, UnicodeDecodeError):
                parsed = {}
            summary: SessionSummary | None = None
            with contextlib.suppress(MessageError):
                summary = SessionSummary.from_json(value)
            out.append(_totals(sid, summary, parsed if isinstance(parsed, dict) else {}, current, snap))
        if current and current.encode() not in raw:  # (its summary is written with its first commit)
            out.append(_totals(current, None, {}, current, snap))
        out.sort(key=lambda s: (s.current, s.started_at or 0), reverse=True)
        return out

    # ------------------------------------------------------------------ the actions service

    async def actions_health(self) -> ActionsHealth | None:
        """The actions service's record (it always publishes one for ``default``); None: not running."""
        return ActionsHealth.from_fields(await self.r.hgetall(self.keys.health(DEFAULT_CHANNEL, ActionsHealth.SERVICE)))

    async def action_records(self, names: list[str]) -> list[ActionRecords]:
        """Each action's records, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys.action_status, name)
            pipe.llen(self.keys.action_dlq(name))
            pipe.lrange(self.keys.action_dlq(name), 0, action_records.RECENT_DEAD_LETTERS - 1)
        pipe.lrange(self.keys.action_retry, 0, RETRY_SCAN - 1)
        results = await pipe.execute()
        queued: dict[str, int] = {}
        for raw in results[-1]:
            letter = DeadLetter.from_json(raw)
            if letter is not None:
                queued[letter.action] = queued.get(letter.action, 0) + 1
        out: list[ActionRecords] = []
        for i, name in enumerate(names):
            status, dead, recent = results[3 * i: 3 * i + 3]
            letters = [d for d in (DeadLetter.from_json(raw) for raw in recent) if d is not None]
            out.append(ActionRecords(name, LastDelivery.from_json(status), int(dead), letters, queued.get(name, 0)))
        return out

    async def queue_action_retries(self, name: str) -> int:
        """Move the action's dead letters to the retry list (what ``owc actions retry`` does)."""
        moved: Any = await self.r.eval(
            action_records.MOVE_DEAD_LETTERS, 2, self.keys.action_dlq(name), self.keys.action_retry
        )
        return int(moved)

    async def queue_action_test(self, name: str, channel: str) -> str:
        """Queue a test victory for the action (what ``owc actions test`` does); return its event id."""
        event_id, letter = action_records.make_test_letter(name, channel, await self.snapshot(channel))
        await self.r.lpush(self.keys.action_retry, letter)
        return event_id
