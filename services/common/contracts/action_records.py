"""The actions service's records in Redis, as both its CLI and the gateway read and queue them.

``owc actions status|retry|test`` (sync Redis) and the admin page's
Automations panel (the gateway, async Redis) share this module: which
actions the settings configure and what each does in one sentence, the
last-delivery record (``owc:actions:status``), the dead letters
(``owc:actions:dlq:<action>``), the test event and the script that moves
dead letters to the retry list. Everything here is pure or a single Redis
command both clients run the same way; nothing here imports the service.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from services.common.config.sections import ALL_ACTION_EVENTS, ActionsSettings, WebhookSettings
from services.common.contracts.codec import text
from services.common.contracts.messages import Counts, Event, StateSnapshot

ActionKind = Literal["webhook", "discord", "streamerbot", "chat", "obs", "twitch", "other"]

# Dead letters shown per action on the admin page (the CLI prints them all).
RECENT_DEAD_LETTERS = 5
# The service publishes its health record every 2 s (with a 30 s TTL): older than this, it is not running.
SERVICE_STALE_MS = 10_000

# Moves every dead letter of an action (oldest first) to the retry list, atomically: the same
# script for `owc actions retry` and the admin page's button. KEYS: the dead letters, the retry list.
MOVE_DEAD_LETTERS = """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do moved = moved + 1 end
return moved
"""

EVENT_WORDS = {
    "detected": "detected results",
    "adjusted": "+/− by hand",
    "set": "counts set by hand",
    "undone": "undos",
    "session_started": "new sessions",
}


def redacted_url(url: str) -> str:
    """Scheme and host only: the path of a Discord webhook URL is its token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


@dataclass(frozen=True)
class ActionInfo:
    """A configured action: its name (keys, logs, metrics) and what it does, in words for a streamer."""

    name: str
    kind: ActionKind
    description: str


def _which(events: list[str], channels: list[str]) -> str:
    what = "every change of the counts" if set(events) >= set(ALL_ACTION_EVENTS) else (
        "only " + ", ".join(EVENT_WORDS.get(e, e) for e in events))
    where = f" of {', '.join(channels)}" if channels else ""
    return what + where


def _webhook_info(w: WebhookSettings) -> ActionInfo:
    which = _which(list(w.events), list(w.channels))
    if w.preset == "discord":
        return ActionInfo(w.name, "discord", f"Posts a message in your Discord channel ({which}).")
    if w.preset == "streamerbot":
        return ActionInfo(w.name, "streamerbot",
                          f"Runs the Streamer.bot action “{w.streamerbot_action}” ({which}).")
    url = redacted_url(w.url.get_secret_value())
    return ActionInfo(w.name, "webhook", f"Sends the result as JSON to {url} ({which}).")


def configured_actions(actions: ActionsSettings) -> list[ActionInfo]:
    """The actions these settings run, in the service's order (webhooks, chat, OBS)."""
    out = [_webhook_info(w) for w in actions.webhooks]
    chat = actions.chat
    if chat.enabled:
        channel = "#" + (chat.twitch_channel or chat.nick or "?").lower().lstrip("#")
        says = "Posts each result in Twitch chat" if chat.post_results else "Answers in Twitch chat"
        out.append(ActionInfo("chat", "chat", f"{says} ({channel}) and answers !wl; moderators can use !win, "
                                              "!loss, !draw and !undo."))
    o = actions.obs
    if o.replay_buffer:
        out.append(ActionInfo("obs-replay", "obs",
                              f"Saves OBS's replay buffer {o.replay_delay_s:g} s after each result."))
    if o.chapters:
        out.append(ActionInfo("obs-chapter", "obs", "Adds a chapter named after each result to the OBS recording."))
    scenes = [(word, scene) for word, scene in (("victory", o.scene_victory), ("defeat", o.scene_defeat),
                                                ("draw", o.scene_draw)) if scene]
    if scenes:
        shown = "; ".join(f"“{scene}” after a {word}" for word, scene in scenes)
        out.append(ActionInfo("obs-scene", "obs", f"Shows a scene for {o.scene_seconds:g} s: {shown}."))
    t = actions.twitch
    if t.enabled and t.markers:
        out.append(ActionInfo("twitch-marker", "twitch", "Adds a Twitch stream marker at each result "
                                                         "(“VICTORY · Competitive · 12–8”)."))
    if t.enabled and t.predictions:
        draw = "a draw refunds" if t.draw == "cancel" else "a draw resolves it"
        when = "when the counter re-arms for the next match" if t.auto_open else "on demand"
        out.append(ActionInfo("twitch-prediction", "twitch", f"Opens a channel-points prediction {when} "
                              f"({t.window_s} s to predict), resolves it with the result; {draw}."))
    return out


def action_names(actions: ActionsSettings) -> list[str]:
    return [a.name for a in configured_actions(actions)]


def known_actions(configured: list[ActionInfo], reported: str | None) -> list[ActionInfo]:
    """The configured actions, then those only the running service reports (its health record's
    ``actions``, comma-separated): its own settings may list more than the reader's."""
    names = {a.name for a in configured}
    extra = [n for n in dict.fromkeys((reported or "").split(",")) if n and n not in names]
    return [*configured, *(ActionInfo(n, "other", "Set up in the running actions service's own settings.")
                           for n in extra)]


def service_running(updated_at: int | None, now_ms: int) -> bool:
    """The service reports every couple of seconds; a record older than :data:`SERVICE_STALE_MS` is a stopped one."""
    return updated_at is not None and now_ms - updated_at < SERVICE_STALE_MS


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _loads(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class LastDelivery:
    """An action's last delivery (``owc:actions:status``): ``ok`` or ``dead`` (given up on)."""

    status: str
    result: str  # "HTTP 204", or why it failed
    at: int | None
    channel: str
    event: str  # the event id
    type: str | None  # event type (None in records written before it was kept)
    outcome: str | None
    test: bool

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> LastDelivery | None:
        """Lenient: a record written by another version never breaks a status page."""
        data = _loads(raw)
        if data is None:
            return None
        return cls(_text(data.get("status")) or "?", _text(data.get("result")), _int_or_none(data.get("at")),
                   _text(data.get("channel")), _text(data.get("event")), data.get("type") or None,
                   data.get("outcome") or None, bool(data.get("test", False)))

    def describe(self) -> str:
        """One line for ``owc actions status``."""
        return f"last: {self.status} ({self.result}) for event {self.channel}/{self.event}"


@dataclass(frozen=True)
class DeadLetter:
    """An event an action gave up on (``owc:actions:dlq:<action>``)."""

    action: str
    error: str
    at: int | None
    channel: str
    event: str
    type: str | None
    outcome: str | None
    test: bool
    attempts: int | None

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> DeadLetter | None:
        data = _loads(raw)
        if data is None:
            return None
        raw_fields = data.get("fields")
        fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
        return cls(_text(data.get("action")), _text(data.get("error")), _int_or_none(data.get("at")),
                   _text(data.get("channel")), _text(data.get("id")), fields.get("type") or None,
                   fields.get("outcome") or None, bool(data.get("test", False)), _int_or_none(data.get("attempts")))


def event_record(channel: str, event: Event, test: bool) -> dict[str, Any]:
    """What a dead letter keeps of the event, enough to run the action again."""
    fields = {text(k): text(v, "replace") for k, v in event.to_fields().items()}
    return {"channel": channel, "id": event.id, "fields": fields, "test": test}


def make_test_letter(
    action: str, channel: str, snapshot: StateSnapshot | None, now_ms: int | None = None
) -> tuple[str, str]:
    """A made-up ``detected`` victory, marked as a test, for the retry list: ``(event id, JSON)``.

    It goes through the retry list, so it takes exactly the path of a real event (the same
    connection, presets, signature) without touching the log. The counts are the channel's
    own plus that victory.
    """
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    counts = snapshot.counts if snapshot else Counts()
    event = Event(type="detected", outcome="victory", delta=1, counts=counts.add("victory", 1),
                  session=snapshot.session if snapshot else "", source="auto", ts=now, note="test event",
                  id=f"test-{now}")
    letter = {"action": action, "error": "", "at": now, **event_record(channel, event, test=True)}
    return event.id, json.dumps(letter)
