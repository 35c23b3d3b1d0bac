"""Typed messages carried by the Redis streams, with ``to_fields``/``from_fields``.

Streams carry bytes: ``from_fields`` accepts the raw ``dict[bytes, bytes]``
that redis-py returns with ``decode_responses=False`` (``str`` keys and values
are accepted too), and raises :class:`MessageError` naming the message, the
field and what was wrong, never a bare ``KeyError``/``ValueError``.

Every message carries ``v`` (schema version). A reader accepts messages of
its own major version and refuses others with a clear error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, get_args

SCHEMA_VERSION = 1

Outcome = Literal["victory", "defeat", "draw"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
LabelName = Literal["none", "victory", "defeat", "draw", "error"]
LABEL_NAMES: tuple[LabelName, ...] = get_args(LabelName)
ImageFormat = Literal["jpg", "png"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)
CommandType = Literal["adjust", "set", "undo", "new_session", "import"]
COMMAND_TYPES: tuple[CommandType, ...] = get_args(CommandType)
EventType = Literal["detected", "adjusted", "set", "undone", "session_started", "imported"]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
EventSource = Literal["auto", "manual"]
Phase = Literal["ready", "cooldown", "waiting_for_none"]
PHASES: tuple[Phase, ...] = get_args(Phase)

Fields = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]
L = TypeVar("L", bound=str)


class MessageError(ValueError):
    """A stream entry that does not match its contract."""


class _Reader:
    """Typed access to a stream entry's fields with precise error messages."""

    def __init__(self, kind: str, fields: Fields) -> None:
        self.kind = kind
        self.raw: dict[str, bytes] = {}
        for k, v in fields.items():
            key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
            self.raw[key] = v if isinstance(v, bytes) else str(v).encode("utf-8")
        version = self.raw.get("v")
        if version is not None:
            try:
                major = int(version)
            except ValueError:
                raise MessageError(f"{kind}: field 'v': expected an integer, got {version!r}") from None
            if major != SCHEMA_VERSION:
                raise MessageError(
                    f"{kind}: schema version {major} is not supported (expected {SCHEMA_VERSION});"
                    " are all services the same version?"
                )

    def _bytes(self, name: str, required: bool) -> bytes | None:
        value = self.raw.get(name)
        if value is None and required:
            raise MessageError(f"{self.kind}: missing field {name!r}")
        return value

    def bytes_(self, name: str) -> bytes:
        value = self._bytes(name, True)
        assert value is not None
        return value

    def str_(self, name: str, default: str | None = None) -> str:
        value = self._bytes(name, default is None)
        if value is None:
            return cast(str, default)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError(f"{self.kind}: field {name!r} is not valid UTF-8") from None

    def int_(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int:
        if default is not None and name not in self.raw:
            return default
        text = self.str_(name)
        try:
            value = int(text)
        except ValueError:
            raise MessageError(f"{self.kind}: field {name!r}: expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise MessageError(f"{self.kind}: field {name!r}: must be >= {minimum}, got {value}")
        return value

    def opt_int(self, name: str) -> int | None:
        if not self.raw.get(name):
            return None
        return self.int_(name)

    def float_(self, name: str, default: float | None = None) -> float:
        if default is not None and name not in self.raw:
            return default
        text = self.str_(name)
        try:
            value = float(text)
        except ValueError:
            raise MessageError(f"{self.kind}: field {name!r}: expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise MessageError(f"{self.kind}: field {name!r}: expected a finite number, got {text!r}")
        return value

    def opt_float(self, name: str) -> float | None:
        if not self.raw.get(name):
            return None
        return self.float_(name)

    def choice(self, name: str, allowed: tuple[L, ...], default: str | None = None) -> L:
        text = self.str_(name, default)
        if text not in allowed:
            raise MessageError(
                f"{self.kind}: field {name!r}: {text!r} is not one of {', '.join(allowed)}"
            )
        return text

    def opt_choice(self, name: str, allowed: tuple[L, ...]) -> L | None:
        if not self.raw.get(name):
            return None
        return self.choice(name, allowed)

    def json_(self, name: str, default: Any = None) -> Any:
        if default is not None and name not in self.raw:
            return default
        text = self.str_(name)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise MessageError(f"{self.kind}: field {name!r}: invalid JSON ({exc.msg})") from None


def _fmt_float(value: float) -> bytes:
    return repr(float(value)).encode()


def _opt(value: object) -> bytes:
    return b"" if value is None else str(value).encode()


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured picture of a channel's game feed (stream ``owc:frames``)."""

    channel: str
    seq: int
    captured_at: int  # epoch ms, the capture's own clock (replays advance it themselves)
    format: ImageFormat
    width: int
    height: int
    image: bytes  # raw encoded image, no base64

    def to_fields(self) -> dict[bytes, bytes]:
        return {
            b"v": b"1",
            b"channel": self.channel.encode(),
            b"seq": str(self.seq).encode(),
            b"captured_at": str(self.captured_at).encode(),
            b"format": self.format.encode(),
            b"width": str(self.width).encode(),
            b"height": str(self.height).encode(),
            b"image": self.image,
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Frame:
        r = _Reader("frame", fields)
        return cls(
            channel=r.str_("channel"),
            seq=r.int_("seq", minimum=0),
            captured_at=r.int_("captured_at", minimum=0),
            format=r.choice("format", IMAGE_FORMATS),
            width=r.int_("width", minimum=1),
            height=r.int_("height", minimum=1),
            image=r.bytes_("image"),
        )


@dataclass(frozen=True, slots=True)
class Label:
    """The classifier's verdict on one frame (stream ``owc:labels``)."""

    channel: str
    seq: int
    captured_at: int
    label: LabelName
    confidence: float
    probs: dict[str, float]
    model: str
    worker: str
    infer_ms: float
    error: str = ""  # why, when label == "error"

    def to_fields(self) -> dict[bytes, bytes]:
        return {
            b"v": b"1",
            b"channel": self.channel.encode(),
            b"seq": str(self.seq).encode(),
            b"captured_at": str(self.captured_at).encode(),
            b"label": self.label.encode(),
            b"confidence": _fmt_float(self.confidence),
            b"probs": json.dumps(self.probs, separators=(",", ":")).encode(),
            b"model": self.model.encode(),
            b"worker": self.worker.encode(),
            b"infer_ms": _fmt_float(self.infer_ms),
            b"error": self.error.encode(),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Label:
        r = _Reader("label", fields)
        probs = r.json_("probs", default={})
        if not isinstance(probs, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) for k, v in probs.items()
        ):
            raise MessageError("label: field 'probs': expected a JSON object of numbers")
        confidence = r.float_("confidence")
        if not 0.0 <= confidence <= 1.0:
            raise MessageError(f"label: field 'confidence': must be within 0..1, got {confidence}")
        return cls(
            channel=r.str_("channel"),
            seq=r.int_("seq", minimum=0),
            captured_at=r.int_("captured_at", minimum=0),
            label=r.choice("label", LABEL_NAMES),
            confidence=confidence,
            probs={k: float(v) for k, v in probs.items()},
            model=r.str_("model", ""),
            worker=r.str_("worker", ""),
            infer_ms=r.float_("infer_ms", 0.0),
            error=r.str_("error", ""),
        )

    @property
    def outcome(self) -> Outcome | None:
        return self.label if self.label in OUTCOMES else None


@dataclass(frozen=True, slots=True)
class Counts:
    victories: int = 0
    defeats: int = 0
    draws: int = 0

    def get(self, outcome: Outcome) -> int:
        return {"victory": self.victories, "defeat": self.defeats, "draw": self.draws}[outcome]

    def add(self, outcome: Outcome, delta: int) -> Counts:
        values = {"victory": self.victories, "defeat": self.defeats, "draw": self.draws}
        values[outcome] += delta
        return Counts(values["victory"], values["defeat"], values["draw"])

    @property
    def total(self) -> int:
        return self.victories + self.defeats + self.draws

    @property
    def win_rate(self) -> float | None:
        """Victories over decided-or-drawn matches; ``None`` before the first match."""
        return None if self.total == 0 else self.victories / self.total

    def as_dict(self) -> dict[str, int]:
        return {"victories": self.victories, "defeats": self.defeats, "draws": self.draws}


@dataclass(frozen=True, slots=True)
class Command:
    """An admin command for the state service (stream ``owc:commands``)."""

    request_id: str
    channel: str
    type: CommandType
    outcome: Outcome | None = None  # adjust
    delta: int | None = None  # adjust
    counts: Counts | None = None  # set
    note: str = ""
    payload: str = ""  # import: JSONL of exported events
    issued_at: int = 0  # epoch ms (wall clock of the gateway)
    deadline: int = 0  # epoch ms; 0 = none. Past it the command is refused, never applied late.
    frame_seq: int | None = None  # adjust: the frame it is about (a near miss counted by hand)

    def to_fields(self) -> dict[bytes, bytes]:
        return {
            b"v": b"1",
            b"request_id": self.request_id.encode(),
            b"frame_seq": _opt(self.frame_seq),
            b"channel": self.channel.encode(),
            b"type": self.type.encode(),
            b"outcome": _opt(self.outcome),
            b"delta": _opt(self.delta),
            b"counts": b"" if self.counts is None else json.dumps(self.counts.as_dict()).encode(),
            b"note": self.note.encode(),
            b"payload": self.payload.encode(),
            b"issued_at": str(self.issued_at).encode(),
            b"deadline": str(self.deadline).encode(),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Command:
        r = _Reader("command", fields)
        counts = None
        if r.raw.get("counts"):
            raw = r.json_("counts")
            try:
                counts = Counts(**{k: int(raw[k]) for k in ("victories", "defeats", "draws")})
            except (KeyError, TypeError, ValueError):
                raise MessageError(
                    "command: field 'counts': expected {victories, defeats, draws} integers"
                ) from None
        request_id = r.str_("request_id")
        if not request_id:
            raise MessageError("command: field 'request_id' is empty")
        return cls(
            request_id=request_id,
            channel=r.str_("channel"),
            type=r.choice("type", COMMAND_TYPES),
            outcome=r.opt_choice("outcome", OUTCOMES),
            delta=r.opt_int("delta"),
            counts=counts,
            note=r.str_("note", ""),
            payload=r.str_("payload", ""),
            issued_at=r.int_("issued_at", 0),
            deadline=r.int_("deadline", 0),
            frame_seq=r.opt_int("frame_seq"),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a channel's event log (stream ``owc:events:{channel}``).

    ``id`` is the stream id once the event is stored (also the SSE event id);
    it is not one of the stored fields.
    """

    type: EventType
    counts: Counts
    session: str
    source: EventSource
    ts: int  # epoch ms when the state service appended it
    outcome: Outcome | None = None
    delta: int = 0
    confidence: float | None = None
    frame_seq: int | None = None
    captured_at: int | None = None
    request_id: str = ""
    note: str = ""
    undoes: str = ""  # for "undone": the stream id of the reverted event
    id: str = field(default="", compare=False)

    def to_fields(self) -> dict[bytes, bytes]:
        return {
            b"v": b"1",
            b"type": self.type.encode(),
            b"outcome": _opt(self.outcome),
            b"delta": str(self.delta).encode(),
            b"victories": str(self.counts.victories).encode(),
            b"defeats": str(self.counts.defeats).encode(),
            b"draws": str(self.counts.draws).encode(),
            b"session": self.session.encode(),
            b"source": self.source.encode(),
            b"confidence": b"" if self.confidence is None else _fmt_float(self.confidence),
            b"frame_seq": _opt(self.frame_seq),
            b"captured_at": _opt(self.captured_at),
            b"request_id": self.request_id.encode(),
            b"note": self.note.encode(),
            b"undoes": self.undoes.encode(),
            b"ts": str(self.ts).encode(),
        }

    @classmethod
    def from_fields(cls, fields: Fields, id: str | bytes = "") -> Event:
        r = _Reader("event", fields)
        return cls(
            type=r.choice("type", EVENT_TYPES),
            outcome=r.opt_choice("outcome", OUTCOMES),
            delta=r.int_("delta", 0),
            counts=Counts(
                r.int_("victories", minimum=0),
                r.int_("defeats", minimum=0),
                r.int_("draws", minimum=0),
            ),
            session=r.str_("session"),
            source=r.choice("source", ("auto", "manual")),
            confidence=r.opt_float("confidence"),
            frame_seq=r.opt_int("frame_seq"),
            captured_at=r.opt_int("captured_at"),
            request_id=r.str_("request_id", ""),
            note=r.str_("note", ""),
            undoes=r.str_("undoes", ""),
            ts=r.int_("ts"),
            id=id.decode() if isinstance(id, bytes) else id,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form used by the API, SSE and exports."""
        return {
            "id": self.id,
            "type": self.type,
            "outcome": self.outcome,
            "delta": self.delta,
            **self.counts.as_dict(),
            "session": self.session,
            "source": self.source,
            "confidence": self.confidence,
            "frame_seq": self.frame_seq,
            "captured_at": self.captured_at,
            "request_id": self.request_id,
            "note": self.note,
            "undoes": self.undoes,
            "ts": self.ts,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """The state service's answer to a command (pushed onto ``owc:reply:{request_id}``)."""

    request_id: str
    ok: bool
    event_id: str = ""  # the event the command produced (ok)
    error: str = ""  # a sentence for the caller (not ok)
    code: str = ""  # machine-readable reason: rejected | expired | invalid

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": SCHEMA_VERSION,
                "request_id": self.request_id,
                "ok": self.ok,
                "event_id": self.event_id,
                "error": self.error,
                "code": self.code,
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Reply:
        try:
            raw = json.loads(data)
            return cls(
                request_id=str(raw["request_id"]),
                ok=bool(raw["ok"]),
                event_id=str(raw.get("event_id", "")),
                error=str(raw.get("error", "")),
                code=str(raw.get("code", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise MessageError(f"reply: not a valid reply ({exc})") from None


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The public part of ``owc:state:{channel}``, read by the gateway.

    The state service also stores its private machine state in the field
    ``machine`` (JSON) of the same hash; readers other than the state service
    must not depend on it.
    """

    counts: Counts
    session: str
    session_started_at: int
    phase: Phase
    cooldown_until: int | None  # frame time (epoch ms) when the cooldown ends
    last_event_id: str
    last_outcome: Outcome | None
    last_event_at: int | None
    streak_outcome: Outcome | None  # outcome of the current run of equal results
    streak: int  # its length
    recent: tuple[Outcome, ...]  # last results of the session, oldest first (at most 20)
    updated_at: int

    def to_fields(self) -> dict[bytes, bytes]:
        return {
            b"v": b"1",
            b"victories": str(self.counts.victories).encode(),
            b"defeats": str(self.counts.defeats).encode(),
            b"draws": str(self.counts.draws).encode(),
            b"session": self.session.encode(),
            b"session_started_at": str(self.session_started_at).encode(),
            b"phase": self.phase.encode(),
            b"cooldown_until": _opt(self.cooldown_until),
            b"last_event_id": self.last_event_id.encode(),
            b"last_outcome": _opt(self.last_outcome),
            b"last_event_at": _opt(self.last_event_at),
            b"streak_outcome": _opt(self.streak_outcome),
            b"streak": str(self.streak).encode(),
            b"recent": ",".join(self.recent).encode(),
            b"updated_at": str(self.updated_at).encode(),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> StateSnapshot:
        r = _Reader("state snapshot", fields)
        recent_text = r.str_("recent", "")
        recent: list[Outcome] = []
        for item in filter(None, recent_text.split(",")):
            if item not in OUTCOMES:
                raise MessageError(f"state snapshot: field 'recent': {item!r} is not an outcome")
            recent.append(item)
        return cls(
            counts=Counts(
                r.int_("victories", minimum=0),
                r.int_("defeats", minimum=0),
                r.int_("draws", minimum=0),
            ),
            session=r.str_("session"),
            session_started_at=r.int_("session_started_at", 0),
            phase=r.choice("phase", PHASES),
            cooldown_until=r.opt_int("cooldown_until"),
            last_event_id=r.str_("last_event_id", ""),
            last_outcome=r.opt_choice("last_outcome", OUTCOMES),
            last_event_at=r.opt_int("last_event_at"),
            streak_outcome=r.opt_choice("streak_outcome", OUTCOMES),
            streak=r.int_("streak", 0, minimum=0),
            recent=tuple(recent),
            updated_at=r.int_("updated_at", 0),
        )
