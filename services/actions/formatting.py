"""Pure decisions and texts of the actions service: no Redis, no network, no clock.

Which events an action takes, what chat says, the bodies and headers a
webhook sends and how they are signed, and how chat commands are read and
who may run them. Everything here is a plain function of its arguments, so
the tables in ``tests/unit/test_actions_formatting.py`` pin it down.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.common.contracts.messages import Counts, Event, Outcome

SIGNATURE_HEADER = "X-OWC-Signature-256"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_ID_HEADER = "X-OWC-Event-Id"
TEST_HEADER = "X-OWC-Test"

HEADLINE: dict[Outcome, str] = {"victory": "VICTORY!", "defeat": "DEFEAT.", "draw": "DRAW."}
SINGULAR: dict[Outcome, str] = {"victory": "victory", "defeat": "defeat", "draw": "draw"}
PLURAL: dict[Outcome, str] = {"victory": "victories", "defeat": "defeats", "draw": "draws"}
ARTICLE: dict[Outcome, str] = {"victory": "a victory", "defeat": "a defeat", "draw": "a draw"}

Preset = Literal["json", "discord", "streamerbot"]


@dataclass(frozen=True, slots=True)
class EventContext:
    """An event as the actions see it: where it comes from and whether it is a test."""

    channel: str
    event: Event  # with its stream id
    test: bool = False

    @property
    def idempotency_key(self) -> str:
        """The same for every delivery of this event (redeliveries included): ``channel/stream-id``."""
        return f"{self.channel}/{self.event.id}"


# ---------------------------------------------------------------- which events


def applies(event_type: str, channel: str, events: Iterable[str], channels: Iterable[str]) -> bool:
    """An action takes an event if its type is listed and its channel is (an empty list = every channel)."""
    allowed_channels = list(channels)
    return event_type in set(events) and (not allowed_channels or channel in allowed_channels)


# ---------------------------------------------------------------- texts


def win_rate_percent(counts: Counts) -> int | None:
    """The overlay's win rate (victories / all matches, draws included), rounded half up."""
    rate = counts.win_rate
    return None if rate is None else int(rate * 100 + 0.5)


def record_text(counts: Counts) -> str:
    """``today 5W 3L 1D, 56%`` (no percentage before the first match)."""
    text = f"today {counts.victories}W {counts.defeats}L {counts.draws}D"
    rate = win_rate_percent(counts)
    return text if rate is None else f"{text}, {rate}%"


def event_text(event: Event, test: bool = False) -> str | None:
    """What chat (and Discord) says about an event; ``None``: nothing worth a message.

    A result counted (by the detector or by hand) gets its headline; anything
    that takes a result back is a ``correction:`` line, never silence.
    """
    tail = record_text(event.counts)
    text: str | None = None
    outcome, delta = event.outcome, event.delta
    if event.type == "detected" and outcome is not None:
        text = f"{HEADLINE[outcome]} {tail}"
    elif event.type == "adjusted" and outcome is not None and delta > 0:
        extra = f" (+{delta})" if delta > 1 else ""
        text = f"{HEADLINE[outcome]}{extra} {tail}"
    elif event.type == "adjusted" and outcome is not None and delta < 0:
        n = -delta
        text = f"correction: {n} {SINGULAR[outcome] if n == 1 else PLURAL[outcome]} removed. {tail}"
    elif event.type == "undone":
        if outcome is not None and delta < 0:
            text = f"correction: that was not {ARTICLE[outcome]}. {tail}"
        elif outcome is not None and delta > 0:
            text = f"correction: the {SINGULAR[outcome]} is back. {tail}"
        else:
            text = f"correction: the previous counts are back. {tail}"
    elif event.type == "set":
        text = f"counts set: {tail}"
    elif event.type == "session_started":
        text = f"new session: {tail}"
    if text is not None and test:
        text = f"[test] {text}"
    return text


# ---------------------------------------------------------------- webhook payloads


def json_payload(ctx: EventContext) -> dict[str, Any]:
    """Our own JSON: the event as the API shows it, plus the channel, the text and the key."""
    e = ctx.event
    return {
        "type": "owc.event",
        "test": ctx.test,
        "channel": ctx.channel,
        "idempotency_key": ctx.idempotency_key,
        "text": event_text(e, ctx.test),
        "win_rate": e.counts.win_rate,
        "event": e.as_dict(),
    }


def discord_payload(ctx: EventContext) -> dict[str, Any] | None:
    """A Discord webhook message (``content``); mentions are never parsed from our text."""
    text = event_text(ctx.event, ctx.test)
    if text is None:
        return None
    return {"content": text, "allowed_mentions": {"parse": []}}


def streamerbot_payload(ctx: EventContext, action: str) -> dict[str, Any]:
    """Streamer.bot's HTTP server ``POST /DoAction`` body: the action by name, the event as its args."""
    e = ctx.event
    rate = win_rate_percent(e.counts)
    return {
        "action": {"name": action},
        "args": {
            "owcEventId": e.id,
            "owcIdempotencyKey": ctx.idempotency_key,
            "owcChannel": ctx.channel,
            "owcType": e.type,
            "owcOutcome": e.outcome or "",
            "owcDelta": e.delta,
            "owcSource": e.source,
            "owcVictories": e.counts.victories,
            "owcDefeats": e.counts.defeats,
            "owcDraws": e.counts.draws,
            "owcWinRate": "" if rate is None else rate,
            "owcText": event_text(e, ctx.test) or "",
            "owcTest": ctx.test,
        },
    }


def webhook_payload(ctx: EventContext, preset: Preset, streamerbot_action: str = "") -> dict[str, Any] | None:
    """The body for a preset; ``None`` when the preset has nothing to send for this event."""
    if preset == "discord":
        return discord_payload(ctx)
    if preset == "streamerbot":
        return streamerbot_payload(ctx, streamerbot_action)
    return json_payload(ctx)


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """Compact, key-ordered JSON: the same event gives the same bytes (and signature) on every retry."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes (GitHub's scheme)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does with :data:`SIGNATURE_HEADER` (constant-time compare)."""
    return hmac.compare_digest(sign(secret, body), header)


def webhook_headers(ctx: EventContext, body: bytes, secret: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ow-victory-counter-actions",
        IDEMPOTENCY_HEADER: ctx.idempotency_key,
        EVENT_ID_HEADER: ctx.event.id,
    }
    if ctx.test:
        headers[TEST_HEADER] = "1"
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    return headers


def retryable_status(status: int) -> bool:
    """5xx, 408 and 429 may succeed later; any other 4xx is our mistake and will not."""
    return status >= 500 or status in (408, 425, 429)


# ---------------------------------------------------------------- chat commands

ChatCommandName = Literal["record", "win", "loss", "draw", "undo", "predict"]
CHAT_COMMANDS: dict[str, ChatCommandName] = {
    "!wl": "record",
    "!record": "record",
    "!win": "win",
    "!loss": "loss",
    "!draw": "draw",
    "!undo": "undo",
    "!predict": "predict",  # actions.twitch: open a prediction (services/actions/twitch)
}
MODERATOR_COMMANDS: dict[ChatCommandName, Outcome | None] = {
    "win": "victory", "loss": "defeat", "draw": "draw", "undo": None,
}
MODERATOR_BADGES = frozenset({"broadcaster", "moderator"})


def parse_chat_command(text: str) -> ChatCommandName | None:
    """The command a chat line starts with (``!WL please`` -> ``record``), or ``None``."""
    words = text.strip().split(maxsplit=1)
    return CHAT_COMMANDS.get(words[0].lower()) if words else None


def tags_dict(tags: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None) -> dict[str, str]:
    """IRCv3 tags as a plain dict (the irc library gives ``[{"key": …, "value": …}]``)."""
    if tags is None:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in tags.items()}
    return {str(t["key"]): "" if t.get("value") is None else str(t["value"]) for t in tags}


def badge_names(tags: Mapping[str, str]) -> set[str]:
    """``badges=broadcaster/1,subscriber/12`` -> ``{"broadcaster", "subscriber"}``."""
    return {b.split("/", 1)[0] for b in tags.get("badges", "").split(",") if b}


def is_moderator(tags: Mapping[str, str]) -> bool:
    """Twitch marks the broadcaster and moderators with badges; ``mod=1`` is the older flag."""
    return bool(badge_names(tags) & MODERATOR_BADGES) or tags.get("mod") == "1"


def may_run(command: ChatCommandName, tags: Mapping[str, str]) -> bool:
    """Anyone may ask for the record; the rest is for the broadcaster and moderators."""
    return command == "record" or is_moderator(tags)


class Cooldown:
    """At most one answer per ``seconds`` (time passed in: the caller owns the clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next = float("-inf")

    def allow(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.seconds
        return True
