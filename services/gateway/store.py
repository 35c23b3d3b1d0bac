"""Everything the gateway reads from Redis, as typed values.

The gateway never writes state: it reads the snapshot hash, the event log,
sessions and health hashes, and sends commands (see :mod:`commands`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.common.health import CaptureHealth, InferenceHealth
from services.common.history import SessionSummary, summarize_sessions
from services.common.keys import CHANNEL_RE, DEFAULT_CHANNEL, GROUP_INFERENCE, Keys
from services.common.messages import Counts, Event, MessageError, StateSnapshot
from services.common.redisio import persistence_problem, write_refusal
from services.gateway.models import (
    DetectionOut,
    EventOut,
    Health,
    NearMiss,
    SessionOut,
    SessionRef,
    Status,
    Streak,
)

log = logging.getLogger("owc.gateway")

WORKER_IDLE_MS = 15_000
EXPORT_CHUNK = 500


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_stream_id(text: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; raises ValueError on anything else."""
    ms, sep, seq = text.partition("-")
    if not ms.isdigit() or (sep and not seq.isdigit()) or len(text) > 41:
        raise ValueError(f"{text!r} is not an event id (expected <milliseconds>-<sequence>)")
    parsed = int(ms), int(seq) if sep else 0
    if max(parsed) >= 2**64:  # Redis stream ids are two unsigned 64-bit numbers
        raise ValueError(f"{text!r} is not an event id (each part must be below 2^64)")
    return parsed


def redis_problem(exc: BaseException) -> tuple[str, str]:
    """``(detail, code)`` for an HTTP answer: Redis refusing writes is not Redis being unreachable."""
    cause = write_refusal(exc)
    if cause is not None:
        return f"Redis cannot write: {cause}; counting is paused, nothing is lost; try again later", "redis_write"
    if isinstance(exc, ResponseError):
        return f"Redis refused the request ({str(exc)[:200]})", "redis"
    return f"Redis is not reachable ({type(exc).__name__}); try again", "redis"


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_out(event: Event) -> EventOut:
    return EventOut(**event.as_dict())


def parse_events(entries: list[Any]) -> list[Event]:
    """Stream entries ``[(id, fields), …]`` -> events; malformed entries are logged and skipped."""
    out: list[Event] = []
    for entry_id, fields in entries:
        try:
            out.append(Event.from_fields(fields, entry_id))
        except MessageError as exc:
            log.warning("skipping malformed event %s: %s", entry_id, exc)
    return out


class Store:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        # redis-py's async return types are unions over decode_responses; we always use bytes.
        self.r: Any = client
        self.keys = keys

    async def channels(self) -> list[str]:
        members = await self.r.smembers(self.keys.channels)
        names = {m.decode("utf-8", "replace") for m in members} | {DEFAULT_CHANNEL}
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
            low = "(" + entries[-1][0].decode()

    async def last_stream_id(self, channel: str) -> str:
        entries = await self.r.xrevrange(self.keys.events(channel), "+", "-", 1)
        return entries[0][0].decode() if entries else "0-0"

    def _queue_health(self, pipe: Any, channel: str) -> None:
        pipe.hgetall(self.keys.health(channel, CaptureHealth.SERVICE))
        pipe.hgetall(self.keys.health(channel, "inference"))
        pipe.exists(self.keys.health(channel, "state"))
        pipe.xinfo_consumers(self.keys.frames, GROUP_INFERENCE)
        pipe.info("persistence")

    @staticmethod
    def _health_from(results: list[Any]) -> Health:
        raw_capture, raw_inference, state_alive, consumers, persistence = results
        capture = CaptureHealth.from_fields(raw_capture) or CaptureHealth()
        inference = InferenceHealth.from_fields(raw_inference) or InferenceHealth()
        workers = 0
        if not isinstance(consumers, Exception):  # no stream or no group yet
            for consumer in consumers:
                idle: Any = consumer.get("idle", consumer.get(b"idle", WORKER_IDLE_MS))
                workers += int(idle) < WORKER_IDLE_MS
        last_frame_at = capture.last_frame_at or None
        held_back = (capture.held_back_s or 0.0) if capture.backpressure else None
        age = None if last_frame_at is None else max(0.0, (now_ms() - last_frame_at) / 1000)
        return Health(
            obs_connected=capture.obs_connected,
            capture_source=capture.source,
            last_frame_at=last_frame_at,
            last_frame_age_s=age,
            last_seq=capture.last_seq,
            capture_error=capture.last_error or None,
            last_label=inference.last_label,
            last_confidence=inference.last_confidence,
            last_label_at=inference.last_label_at,
            model=inference.model,
            near_miss=_near_miss(inference),
            workers=workers,
            state_alive=bool(state_alive),
            capture_held_back_s=held_back,
            redis_write_error=None if isinstance(persistence, Exception) else persistence_problem(persistence),
        )

    async def health(self, channel: str) -> Health:
        pipe = self.r.pipeline(transaction=False)
        self._queue_health(pipe, channel)
        return self._health_from(await pipe.execute(raise_on_error=False))

    async def status(self, channel: str) -> Status:
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
        return build_status(channel, snap, last_event, self._health_from(results[2:]))

    async def detframe(self, channel: str, seq: int) -> bytes | None:
        data: Any = await self.r.get(self.keys.detframe(channel, seq))
        return bytes(data) if data is not None else None

    async def detinfo(self, channel: str, seq: int) -> DetectionOut | None:
        raw: Any = await self.r.get(self.keys.detinfo(channel, seq))
        if raw is None:
            return None
        try:
            return DetectionOut.model_validate({**json.loads(raw), "channel": channel, "frame_seq": seq})
        except (ValueError, TypeError):  # written by another version: say nothing rather than fail
            return None

    async def sessions(self, channel: str) -> list[SessionOut]:
        """Sessions with totals: the state service's summaries, else folded from the event log."""
        raw: dict[bytes, bytes] = await self.r.hgetall(self.keys.sessions(channel))
        snap = await self.snapshot(channel)
        current = snap.session if snap else ""
        stored: dict[str, SessionSummary] = {}
        extra: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            sid = key.decode("utf-8", "replace")
            try:
                parsed = json.loads(value)
            except (json.JSONDecodeError, UnicodeDecodeError):
                parsed = {}
            extra[sid] = parsed if isinstance(parsed, dict) else {}
            with contextlib.suppress(MessageError):
                stored[sid] = SessionSummary.from_json(value)
        folded: dict[str, SessionSummary] = {}
        if any(sid not in stored for sid in extra) or not stored or current not in stored:
            folded = {s.session: s for s in summarize_sessions([e async for e in self.iter_events(channel)])}
        ids = list(dict.fromkeys([*stored, *folded, *extra, *([current] if current else [])]))
        out: list[SessionOut] = []
        for sid in ids:
            summary = stored.get(sid) or folded.get(sid)
            counts = summary.counts if summary else Counts()
            started = summary.started_at if summary else None
            ended = summary.ended_at if summary else None
            if sid == current and snap is not None:
                counts = snap.counts
                started = snap.session_started_at or started
                ended = None
            out.append(
                SessionOut(
                    id=sid,
                    started_at=started,
                    ended_at=ended,
                    victories=counts.victories,
                    defeats=counts.defeats,
                    draws=counts.draws,
                    total=counts.total,
                    win_rate=counts.win_rate,
                    current=sid == current,
                    summary=extra.get(sid) or (summary.as_dict() if summary else {}),
                )
            )
        out.sort(key=lambda s: (s.current, s.started_at or 0), reverse=True)
        return out


def build_status(channel: str, snap: StateSnapshot | None, last_event: Event | None, health: Health) -> Status:
    now = now_ms()
    counts = snap.counts if snap else Counts()
    cooldown = 0.0
    if snap and snap.phase == "cooldown" and snap.cooldown_until:
        cooldown = max(0.0, (snap.cooldown_until - now) / 1000)
    return Status(
        channel=channel,
        victories=counts.victories,
        defeats=counts.defeats,
        draws=counts.draws,
        total=counts.total,
        win_rate=counts.win_rate,
        streak=Streak(outcome=snap.streak_outcome if snap else None, length=snap.streak if snap else 0),
        recent=list(snap.recent) if snap else [],
        phase=snap.phase if snap else None,
        cooldown_remaining_s=round(cooldown, 3),
        session=SessionRef(id=snap.session if snap else "", started_at=snap.session_started_at if snap else None),
        last_outcome=snap.last_outcome if snap else None,
        last_event_at=snap.last_event_at if snap else None,
        last_event_id=snap.last_event_id if snap else "",
        last_event=event_out(last_event) if last_event else None,
        health=health,
        updated_at=snap.updated_at if snap else 0,
        server_time=now,
    )


def _near_miss(inference: InferenceHealth) -> NearMiss | None:
    n = inference
    if n.near_miss not in ("victory", "defeat", "draw") or n.near_miss_seq is None:
        return None
    return NearMiss(
        outcome=n.near_miss,  # type: ignore[arg-type]
        confidence=n.near_miss_confidence or 0.0,
        frame_seq=n.near_miss_seq,
        captured_at=n.near_miss_at or 0,
        text=n.near_miss_text or "",
    )
