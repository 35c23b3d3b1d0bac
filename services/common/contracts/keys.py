"""Every Redis key, stream and consumer-group name in one place.

No service spells a key by hand: they all go through :class:`Keys`, so the
prefix (default ``owc``) is configurable and the layout is documented once.
A key is the prefix and a name (``_Key``), or the prefix, a name and a
channel, action or request id (``_KeyOf``); the few with more parts are methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from services.common.contracts.codec import text

GROUP_INFERENCE = "inference"
GROUP_STATE = "state"
GROUP_ACTIONS = "actions"  # the actions service, on every owc:events:{channel}

DEFAULT_CHANNEL = "default"
CHANNEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class InvalidChannelError(ValueError):
    pass


def validate_channel(name: str) -> str:
    """Return ``name`` if it is a valid channel name, else raise a clear error."""
    if not CHANNEL_RE.fullmatch(name):
        raise InvalidChannelError(
            f"invalid channel name {name!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


class _Key:
    """A key that is the prefix and a fixed name: ``frames = _Key("frames")``, ``Keys().frames == "owc:frames"``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, keys: Keys, owner: type[Keys] | None = None) -> str:
        return f"{keys.prefix}:{self.name}"


class _KeyOf:
    """A key per channel, action or request: ``state = _KeyOf("state")``, ``Keys().state("x") == "owc:state:x"``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, keys: Keys, owner: type[Keys] | None = None) -> Callable[[str], str]:
        base = f"{keys.prefix}:{self.name}:"
        return lambda name: base + name


@dataclass(frozen=True)
class Keys:
    prefix: str = "owc"

    # streams shared by all channels
    frames = _Key("frames")
    labels = _Key("labels")
    commands = _Key("commands")

    # Sorted set: inference worker name -> its last heartbeat (epoch ms), written whether or not
    # frames arrive (the admin's "Workers" count; a stopped worker removes itself).
    inference_workers = _Key("inference:workers")

    # Hash: inference worker name -> the model id it loaded, written with its heartbeat (the
    # admin's "Model" row before the first frame; a stopped worker removes its field).
    inference_models = _Key("inference:models")

    @staticmethod
    def dlq(stream: str) -> str:
        return f"{stream}:dlq"

    # per channel
    # The append-only event log; its stream ids are the SSE event ids.
    events = _KeyOf("events")

    def channel_of(self, events_stream: str) -> str:
        """The channel whose :meth:`events` log ``events_stream`` is (its inverse)."""
        prefix = self.events("")
        if not events_stream.startswith(prefix):
            raise ValueError(f"{events_stream!r} is not an event log key (expected {prefix}<channel>)")
        return events_stream[len(prefix):]

    # Hash: counts + machine snapshot, written with the event it follows from.
    state = _KeyOf("state")

    # Hash: session id -> JSON summary (totals, start/end, streaks).
    sessions = _KeyOf("sessions")

    def health(self, channel: str, service: str) -> str:
        return f"{self.prefix}:health:{channel}:{service}"

    def health_pattern(self, channel: str) -> str:
        return f"{self.prefix}:health:{channel}:*"

    def detframe(self, channel: str, seq: int) -> str:
        """JPEG of a frame that produced an outcome label or a near miss (kept with a TTL)."""
        return f"{self.prefix}:detframe:{channel}:{seq}"

    def detinfo(self, channel: str, seq: int) -> str:
        """JSON: what the detector saw on a :meth:`detframe` (each stage's scores; same TTL)."""
        return f"{self.prefix}:detinfo:{channel}:{seq}"

    def detframe_pattern(self, channel: str) -> str:
        """SCAN pattern matching every :meth:`detframe` key of ``channel``."""
        return f"{self.prefix}:detframe:{channel}:*"

    def detframe_seq(self, channel: str, key: bytes | str) -> int | None:
        """The seq of a :meth:`detframe` key of ``channel`` (its inverse; None for any other key)."""
        prefix, name = f"{self.prefix}:detframe:{channel}:", text(key, "replace")
        seq = name[len(prefix):] if name.startswith(prefix) else ""
        return int(seq) if seq.isdigit() else None

    # Counter for frame sequence numbers (INCR: never reused after a restart).
    seq = _KeyOf("seq")

    # Pub/sub channel: inference publishes a candidate frame's seq; the channel's capture takes its
    # next frame at once (:mod:`services.common.infra.burst`). Not a key: nothing is stored.
    capture_burst = _KeyOf("capture:burst")

    # Hash: progress of the channel's replay, so a restarted capture resumes it.
    replay = _KeyOf("replay")

    # Set of channel names that have been seen by any service.
    channels = _Key("channels")

    lease = _KeyOf("lease")

    # List the state service pushes a command's reply onto (BLPOP-able, TTL).
    reply = _KeyOf("reply")

    # Hash request_id -> reply JSON, for idempotent command processing.
    command_done = _KeyOf("cmddone")

    # gateway
    # Hash preset name -> JSON ``{"params": {…}, "updated_at": ms}``: the overlay designer's named
    # looks, one set for the whole gateway (not per channel: a preset is a look, ``?channel=`` stays in
    # the URL). Written by the gateway only (``services/gateway/presets.py``); no TTL.
    overlay_presets = _Key("overlay:presets")

    # actions service (match-end automations)
    # Hash ``{channel}/{event id}`` -> what the action did (JSON), written before the event is acked.
    #
    # A redelivered event whose field is present is not acted on again (chat cannot dedupe).
    action_done = _KeyOf("actions:done")

    # List of JSON records: events an action gave up on after its retries (newest first).
    action_dlq = _KeyOf("actions:dlq")

    # Sorted set ``{channel}/{event id}`` -> due time (ms): the action's own queue (its lane).
    #
    # The dispatcher adds an event here (with its record in :meth:`action_pending`) in the same
    # transaction that acks it; the action's lane removes it with the record of what it did. Due is
    # the event's time plus ``actions.stream_delay_s`` for a delayed action, so the queue survives
    # restarts and a correction inside the delay can take a pending entry back.
    action_due = _KeyOf("actions:due")

    # Hash ``{channel}/{event id}`` -> JSON of the event a lane still has to act on (see :meth:`action_due`).
    action_pending = _KeyOf("actions:pending")

    # Hash action name -> the key its lane is acting on right now (a correction no longer takes it back).
    action_inflight = _Key("actions:inflight")

    # Stream id from which the actions service acts (set once, on its first start): events
    # older than the service itself are history, never posted again.
    actions_since = _Key("actions:since")

    # List of dead letters queued again by ``owc actions retry|test`` or the admin page (the service pops them).
    action_retry = _Key("actions:retry")

    # Hash action name -> JSON of its last delivery (for the admin page and ``owc actions status``).
    action_status = _Key("actions:status")

    # Twitch (predictions, markers: services/actions/twitch)
    # String (JSON): the channel's current or last prediction: its Twitch id, the event id of the
    # match it follows (``after``), its status and outcome ids, and the last few results that ended one
    # (``resolved``, for a later undo). A restart resumes it from here.
    twitch_prediction = _KeyOf("twitch:prediction")

    # List of JSON requests ``{"op": "open"|"cancel", "channel", "by"}`` from the admin page and
    # ``!predict`` (the actions service pops them, oldest first).
    twitch_requests = _Key("twitch:requests")

    # Hash: the Twitch sign-in's state (``token``: ok | missing | refused | scopes, ``login``,
    # ``message``) and ``markers`` (ok | offline | failed), for the admin page and ``owc actions status``.
    twitch_status = _Key("twitch:status")
