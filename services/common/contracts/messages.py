"""Typed messages carried by the Redis streams, with ``to_fields``/``from_fields``.

Each message is one frozen dataclass whose annotated attributes are its field
table (how annotations are stored: :mod:`services.common.contracts.codec`); adding a
field is one line, plus ``IfAbsent`` when entries written before it must
still read back. The stored form is pinned byte for byte by
``tests/unit/test_messages_wire.py``: services of different versions share
the streams, and old entries stay in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal, Self, get_args

from services.common.contracts.codec import (
    COLUMNS,
    NOT_STORED,
    NUMBER_MAP,
    Codec,
    IfAbsent,
    JsonRecord,
    Message,
    NonNegative,
    Positive,
    Probability,
    at_least,
    message,
    non_empty,
    read_json,
    read_text,
    text,
)

# re-exported: part of this module's API since before the codec
from services.common.contracts.codec import SCHEMA_VERSION as SCHEMA_VERSION
from services.common.contracts.codec import Fields as Fields
from services.common.contracts.codec import MessageError as MessageError

Outcome = Literal["victory", "defeat", "draw"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
LabelName = Literal["none", "victory", "defeat", "draw", "error"]
LABEL_NAMES: tuple[LabelName, ...] = get_args(LabelName)
ImageFormat = Literal["jpg", "png"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)
# scan_import: results of `owc scan --import` (payload: services/common/contracts/scanimport.py)
CommandType = Literal["adjust", "set", "undo", "new_session", "import", "mode", "scan_import"]
COMMAND_TYPES: tuple[CommandType, ...] = get_args(CommandType)
EventType = Literal["detected", "adjusted", "set", "undone", "session_started", "imported", "mode_changed"]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
# import: a result found in a recording by `owc scan` and added with --import (docs/scan.md)
EventSource = Literal["auto", "manual", "import"]
Phase = Literal["ready", "cooldown", "waiting_for_none"]
PHASES: tuple[Phase, ...] = get_args(Phase)


def _outcome_list(raw: bytes, where: str) -> tuple[str, ...]:
    items = tuple(filter(None, read_text(raw, where).split(",")))
    for item in items:
        if item not in OUTCOMES:
            raise MessageError(f"{where}: {item!r} is not an outcome")
    return items


OUTCOME_LIST = Codec(lambda v: ",".join(v).encode(), _outcome_list)  # "victory,defeat"


@message("frame")
@dataclass(frozen=True, slots=True)
class Frame(Message):
    """One captured picture of a channel's game feed (stream ``owc:frames``)."""

    channel: str
    seq: NonNegative
    captured_at: NonNegative  # epoch ms, the capture's own clock (replays advance it themselves)
    format: ImageFormat
    width: Positive
    height: Positive
    image: bytes  # raw encoded image, no base64


@message("label")
@dataclass(frozen=True, slots=True)
class Label(Message):
    """The classifier's verdict on one frame (stream ``owc:labels``)."""

    channel: str
    seq: NonNegative
    captured_at: NonNegative
    label: LabelName
    confidence: Probability
    probs: Annotated[dict[str, float], NUMBER_MAP, IfAbsent({})]
    model: Annotated[str, IfAbsent("")]
    worker: Annotated[str, IfAbsent("")]
    infer_ms: Annotated[float, IfAbsent(0.0)]
    error: str = ""  # why, when label == "error"
    # The reader's own evidence (docs/detector.md#banner-evidence), so the rules can decide on the banner:
    # ``read`` is the outcome whose word the reader read best when it reached the near-miss level, beat every
    # look-alike and passed the list check ("" otherwise, and in labels written before this field); ``score``
    # is that outcome's best word's mean log-probability per letter whenever the reader ran (None otherwise).
    read: str = ""
    score: float | None = None

    @property
    def outcome(self) -> Outcome | None:
        return self.label if self.label in OUTCOMES else None

    @property
    def read_outcome(self) -> Outcome | None:
        """The outcome the reader saw (accepted or a near miss), if any."""
        return self.read if self.read in OUTCOMES else None


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


def _counts_json(raw: bytes, where: str) -> Counts:
    value = read_json(raw, where)
    names = [f.name for f in fields(Counts)]
    try:
        return Counts(**{name: int(value[name]) for name in names})
    except (KeyError, TypeError, ValueError, OverflowError):
        raise MessageError(f"{where}: expected {{{', '.join(names)}}} integers") from None


COUNTS_JSON = Codec(lambda v: json.dumps(v.as_dict()).encode(), _counts_json)


def _per_mode(what: str, parse_one: Callable[[Any, str], Any]) -> Codec:
    """A field holding a JSON object of mode -> one value (``what``: its fields, for the errors).

    ``parse_one(value, where)`` reads one mode's value: a KeyError, TypeError or ValueError is
    "expected ``what``"; a :class:`MessageError` says itself what is wrong.
    """

    def parse(raw: bytes, where: str) -> dict[str, Any]:
        value = read_json(raw, where)
        if not isinstance(value, dict):
            raise MessageError(f"{where}: expected a JSON object of mode -> {what}")
        out: dict[str, Any] = {}
        for mode, one in value.items():
            try:
                out[str(mode)] = parse_one(one, f"{where}: mode {mode!r}")
            except MessageError:
                raise
            except (KeyError, TypeError, ValueError, OverflowError):
                raise MessageError(f"{where}: mode {mode!r}: expected {what}") from None
        return out

    def encode(modes: dict[str, Any]) -> bytes:
        compact = json.dumps({k: v.as_dict() for k, v in modes.items()}, separators=(",", ":"), ensure_ascii=False)
        return compact.encode()

    return Codec(encode, parse)


# {"competitive": {"victories": 3, "defeats": 1, "draws": 0}, "": {...}} ("" = counted without a mode)
MODE_COUNTS_JSON = _per_mode(
    "{victories, defeats, draws} integers",
    lambda c, _where: Counts(int(c["victories"]), int(c["defeats"]), int(c["draws"])),
)
CountColumns = Annotated[Counts, COLUMNS, at_least(0)]  # stored as victories, defeats, draws


@dataclass(frozen=True, slots=True)
class ModeRun:
    """One mode's streak and last results in the current session (what ``recent``/``streak`` are for all)."""

    recent: tuple[Outcome, ...] = ()  # oldest first, at most 20
    streak_outcome: Outcome | None = None  # outcome of the mode's current run of equal results
    streak: int = 0  # its length

    def as_dict(self) -> dict[str, Any]:
        return {"recent": ",".join(self.recent), "streak": self.streak}


def _mode_run(run: Any, where: str) -> ModeRun:
    recent = _outcome_list(str(run["recent"]).encode(), where)
    streak = int(run["streak"])
    if streak < 0 or (streak and not recent):
        raise MessageError(f"{where}: a streak of {streak} with last results {recent!r}")
    return ModeRun(recent, recent[-1] if streak else None, streak)  # type: ignore[arg-type]


# {"competitive": {"recent": "victory,victory,defeat", "streak": 1}}: the streak's outcome is the last result
MODE_RUNS_JSON = _per_mode("{recent, streak}", _mode_run)


# order=: the stored order of the fields that predate the codec; new fields are stored last
@message("command", order=("request_id", "frame_seq"))
@dataclass(frozen=True, slots=True)
class Command(Message):
    """An admin command for the state service (stream ``owc:commands``)."""

    request_id: Annotated[str, non_empty]
    channel: str
    type: CommandType
    outcome: Outcome | None = None  # adjust
    delta: int | None = None  # adjust
    counts: Annotated[Counts | None, COUNTS_JSON] = None  # set
    note: str = ""
    payload: str = ""  # import: JSONL of exported events; scan_import: a ScanImport (JSON)
    issued_at: int = 0  # epoch ms (wall clock of the gateway)
    deadline: int = 0  # epoch ms; 0 = none. Past it the command is refused, never applied late.
    frame_seq: int | None = None  # adjust: the frame it is about (a near miss counted by hand)
    mode: str = ""  # mode: the channel's new mode ("" = none); absent in commands older than modes


@message("event", order=("type", "outcome", "delta", "counts", "session", "source", "confidence", "frame_seq",
                         "captured_at", "request_id", "note", "undoes", "ts"))
@dataclass(frozen=True, slots=True)
class Event(Message):
    """One entry of a channel's event log (stream ``owc:events:{channel}``).

    ``id`` is the stream id once the event is stored (also the SSE event id);
    it is not one of the stored fields.
    """

    type: EventType
    counts: CountColumns
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
    # the channel's mode when the event happened (for "mode_changed": the new one); "" = none, and in
    # every event written before modes existed
    mode: str = ""
    id: Annotated[str, NOT_STORED] = field(default="", compare=False)

    @classmethod
    def from_fields(cls, fields: Fields, id: str | bytes = "") -> Self:
        return cls._decode(fields, id=text(id))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form used by the API, SSE and exports."""
        return {"id": self.id, **self._stored_values()}


@dataclass(frozen=True, slots=True)
class Reply:
    """The state service's answer to a command (pushed onto ``owc:reply:{request_id}``).

    Stored as one JSON object, not as stream fields.
    """

    request_id: str
    ok: bool
    event_id: str = ""  # the event the command produced (ok)
    error: str = ""  # a sentence for the caller (not ok)
    code: str = ""  # machine-readable reason: rejected | expired | invalid

    def to_json(self) -> bytes:
        return REPLY_JSON.dumps(self).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Reply:
        return REPLY_JSON.loads(data)


# ``v`` first, then the fields, with a space after each separator: the form replies have always had
REPLY_JSON = JsonRecord(Reply, "reply", compact=False)


@message("state snapshot")
@dataclass(frozen=True, slots=True)
class StateSnapshot(Message):
    """The public part of ``owc:state:{channel}``, read by the gateway.

    The state service also stores its private machine state in the field
    ``machine`` (JSON) of the same hash; readers other than the state service
    must not depend on it.
    """

    counts: CountColumns
    session: str
    session_started_at: Annotated[int, IfAbsent(0)]
    phase: Phase
    cooldown_until: int | None  # frame time (epoch ms) when the cooldown ends
    last_event_id: Annotated[str, IfAbsent("")]
    last_outcome: Outcome | None
    last_event_at: int | None
    streak_outcome: Outcome | None  # outcome of the current run of equal results
    streak: Annotated[NonNegative, IfAbsent(0)]  # its length
    # last results of the session, oldest first (at most 20)
    recent: Annotated[tuple[Outcome, ...], OUTCOME_LIST, IfAbsent(())]
    updated_at: Annotated[int, IfAbsent(0)]
    mode: str = ""  # the channel's current mode ("" = none); absent in snapshots older than modes
    # the session's counts per mode, only modes with a match ("" = counted without a mode); they add up to
    # the counts unless a `set` was clamped (services/state/fold.py)
    by_mode: Annotated[dict[str, Counts], MODE_COUNTS_JSON] = field(default_factory=dict)
    # each mode's streak and last results this session (only modes with a result); absent in older snapshots
    mode_runs: Annotated[dict[str, ModeRun], MODE_RUNS_JSON] = field(default_factory=dict)
