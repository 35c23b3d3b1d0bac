"""The health records the services publish for the status panel (``owc:health:{channel}:{service}``).

One typed model per service, written and read only through this module, so
no service spells a health field by hand. Each record is a Redis hash with a
TTL: it disappears when its service stops reporting. Values are stored as
text (booleans as ``1``/``0``, ``None`` left out); reading is lenient
(unknown fields ignored, unreadable ones treated as missing), because a
record written by another version must never break the status page.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import redis
from pydantic import BaseModel, ConfigDict, ValidationError

from services.common.contracts.codec import text
from services.common.contracts.keys import Keys

R = TypeVar("R", bound="HealthRecord")


class HealthRecord(BaseModel):
    """Base: ``SERVICE`` names the hash; fields are the record."""

    model_config = ConfigDict(extra="ignore")
    SERVICE: ClassVar[str]
    updated_at: int | None = None  # epoch ms of the last write (set by :func:`publish`)

    def updated(self: R, **fields: Any) -> R:
        """A copy with ``fields`` changed; an unknown field name is a bug, said loudly (not dropped)."""
        unknown = set(fields) - set(type(self).model_fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}")
        return self.model_copy(update=fields)

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            out[name] = str(int(value)) if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_fields(cls: type[R], raw: Mapping[bytes, bytes] | Mapping[str, str] | None) -> R | None:
        """The record from a hash (``None`` when there is none); a bad field reads as missing."""
        if not raw:
            return None
        data: dict[str, Any] = {}
        for k, v in raw.items():
            data[text(k, "replace")] = text(v, "replace")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            return cls.model_validate({k: v for k, v in data.items() if k not in bad})


class CaptureHealth(HealthRecord):
    SERVICE: ClassVar[str] = "capture"
    source: str | None = None  # "(program scene)", an OBS source name, or "replay:PATH"
    state: str | None = None  # starting | connected | reconnecting | …
    obs_connected: bool | None = None
    obs_version: str | None = None
    last_error: str | None = None
    last_error_kind: str | None = None  # a row of services/capture/obs_errors.py
    last_error_at: int | None = None  # epoch ms
    render_failures: int | None = None  # 702s in a row
    last_seq: int | None = None
    last_frame_at: int | None = None  # epoch ms, the frame's captured_at
    frames_published: int | None = None
    skipped: int | None = None
    backpressure: bool | None = None  # held back: inference is behind
    held_back_s: float | None = None


class InferenceHealth(HealthRecord):
    SERVICE: ClassVar[str] = "inference"
    last_label: str | None = None
    last_confidence: float | None = None
    last_label_at: int | None = None
    model: str | None = None
    worker: str | None = None
    # the latest near miss: the reader saw an outcome word, not clearly enough to count it
    near_miss: str | None = None
    near_miss_confidence: float | None = None
    near_miss_seq: int | None = None
    near_miss_at: int | None = None
    near_miss_text: str | None = None


class StateHealth(HealthRecord):
    SERVICE: ClassVar[str] = "state"
    phase: str | None = None
    lease_holder: str | None = None
    role: str | None = None
    session: str | None = None
    last_seq: int | None = None
    victories: int | None = None
    defeats: int | None = None
    draws: int | None = None
    cooldown_until: int | None = None
    none_run: int | None = None
    buffered: int | None = None
    reorder_skipped: int | None = None


class ActionsHealth(HealthRecord):
    SERVICE: ClassVar[str] = "actions"
    actions: str | None = None  # the configured actions, comma-separated
    dead_letters: int | None = None
    chat: str | None = None  # connected | auth_failed | disconnected (when a chat bot is configured)
    chat_channel: str | None = None


def fields_now(record: HealthRecord) -> dict[str, str]:
    """The record as the hash's fields, ``updated_at`` now (what :func:`publish` writes)."""
    return record.model_copy(update={"updated_at": int(time.time() * 1000)}).to_fields()


def publish(client: redis.Redis, keys: Keys, channel: str, record: HealthRecord, ttl_s: int = 30) -> None:
    """Write (merge) a service's record for a channel; it expires if the service stops reporting."""
    pipe = client.pipeline(transaction=False)
    queue(pipe, keys, channel, record, ttl_s)
    pipe.execute()


def queue(pipe: redis.client.Pipeline, keys: Keys, channel: str, record: HealthRecord, ttl_s: int = 30) -> None:
    """:func:`publish`'s commands into ``pipe`` (a round trip that carries other commands too)."""
    key = keys.health(channel, record.SERVICE)
    pipe.hset(key, mapping=fields_now(record))  # type: ignore[arg-type]
    pipe.expire(key, ttl_s)
    pipe.sadd(keys.channels, channel)


HEALTH_REFRESH_S = 10.0  # a record that has not changed is written again this often (its TTL is 30 s)


@dataclass
class Cadence:
    """When a service's health records are due: at most every ``interval_s`` while a record changes, every
    ``refresh_s`` while it does not (so it never expires while its service runs, and an idle stack is quiet)."""

    interval_s: float = 1.0
    refresh_s: float = HEALTH_REFRESH_S
    _sent: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)

    def due(self, key: str, record: HealthRecord, now: float) -> bool:
        last = self._sent.get(key)
        if last is None:
            return True
        sent_at, fields = last
        elapsed = now - sent_at
        if elapsed < self.interval_s or elapsed >= self.refresh_s:
            return elapsed >= self.refresh_s
        return record.to_fields() != fields

    def sent(self, key: str, record: HealthRecord, now: float) -> None:
        self._sent[key] = (now, record.to_fields())

    def sent_at(self, key: str) -> float | None:
        """When ``key``'s record was last sent (``None``: never): before it is ``interval_s`` (or ``refresh_s``)
        older nothing is due, whatever the record holds, so a caller need not build one to ask."""
        last = self._sent.get(key)
        return None if last is None else last[0]


WORKER_ALIVE_MS = 15_000  # a worker whose last heartbeat is older is not counted (its block_ms is at most 10 s)
WORKER_BEAT_S = 5.0  # how often a running worker says so (three beats in WORKER_ALIVE_MS)


def worker_beat(client: redis.Redis, keys: Keys, worker: str, alive: bool = True, model: str | None = None) -> None:
    """An inference worker says it is running, with the model it loaded (or, ``alive=False``, that
    it stopped); entries of workers that died without a word are dropped after an hour."""
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    if alive:
        pipe.zadd(keys.inference_workers, {worker: now})
        if model:
            pipe.hset(keys.inference_models, worker, model)
    else:
        pipe.zrem(keys.inference_workers, worker)
        pipe.hdel(keys.inference_models, worker)
    pipe.zremrangebyscore(keys.inference_workers, "-inf", now - 3_600_000)
    pipe.execute()
