"""The Twitch records in Redis, as the actions service writes them and the admin page reads them.

``owc:twitch:prediction:{channel}`` holds one JSON object, the channel's current or last
prediction (:class:`PredictionRecord`); ``owc:twitch:status`` the sign-in's state. Pure code
and plain values: the gateway (async Redis) and the service (sync Redis) share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from services.common.contracts import codec

PredictionStatus = Literal["opening", "open", "locked", "resolved", "cancelled", "failed"]
ACTIVE_STATUSES: frozenset[str] = frozenset({"opening", "open", "locked"})
RequestOp = Literal["open", "cancel"]
RESOLUTIONS_KEPT = 5  # the last few results that ended a prediction, for an undo that comes later


@dataclass(frozen=True)
class Resolution:
    """A result event that ended a prediction (resolved, or cancelled for a draw), kept after the next
    prediction opens: an undo of it, however late, is explained in chat once (``noted``)."""

    event: str  # the result event's stream id
    id: str  # Twitch's prediction id
    title: str
    status: str  # resolved | cancelled
    winner: str = ""
    result: str = ""
    noted: bool = False  # the undo notice was said


@dataclass(frozen=True)
class PredictionRecord:
    """A prediction and the match it covers: the first result counted after the event ``after``.

    ``opening`` is written before the create request: a service killed before the answer finds it
    and looks at Twitch before creating again.
    """

    channel: str
    after: str  # stream id of the channel's last event when it opened ("" = none yet)
    status: PredictionStatus
    title: str
    window_s: int
    opened_at: int  # epoch ms (the create request)
    id: str = ""  # Twitch's prediction id
    outcomes: dict[str, str] = field(default_factory=dict)  # our outcome (victory|defeat|draw) -> Twitch id
    event: str = ""  # the event that resolved or cancelled it
    result: str = ""  # victory | defeat | draw, when resolved; why, when cancelled or failed
    winner: str = ""  # the winning outcome's title
    updated_at: int = 0
    by: str = ""  # who asked: auto | admin | chat: <name>
    resolved: tuple[Resolution, ...] = ()  # the last results that ended this or earlier ones, newest last

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def shown_status(self, now_ms: int) -> str:
        """``open`` turns ``locked`` once its window is over (Twitch locks it then)."""
        if self.status == "open" and now_ms >= self.opened_at + self.window_s * 1000:
            return "locked"
        return self.status

    def updated(self, now_ms: int, **changes: Any) -> PredictionRecord:
        return replace(self, updated_at=now_ms, **changes)

    def to_json(self) -> str:
        return PREDICTION_JSON.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> PredictionRecord | None:
        """Lenient: an unreadable record is no record (the admin page never breaks on it)."""
        if raw is None:
            return None
        try:
            return PREDICTION_JSON.loads(raw)
        except codec.MessageError:
            return None


# no ``v``, a space after each separator: the form these records have always had
PREDICTION_JSON = codec.JsonRecord(PredictionRecord, "twitch prediction", versioned=False, compact=False)


def request_json(op: RequestOp, channel: str, by: str) -> str:
    """One entry of ``owc:twitch:requests`` (open or cancel a prediction on demand)."""
    return json.dumps({"op": op, "channel": channel, "by": by})


@dataclass(frozen=True)
class TwitchStatus:
    """``owc:twitch:status``: the sign-in (``token``: ok | missing | refused | scopes) and the markers."""

    token: str = ""
    login: str = ""
    message: str = ""
    markers: str = ""
    markers_message: str = ""
    updated_at: int = 0

    @property
    def token_ok(self) -> bool:
        return self.token == "ok"

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> TwitchStatus:
        def text(name: str) -> str:
            return codec.text(raw.get(name, raw.get(name.encode(), b"")), "replace")

        try:
            updated = int(text("updated_at") or 0)
        except ValueError:
            updated = 0
        return cls(text("token"), text("login"), text("message"), text("markers"), text("markers_message"), updated)
