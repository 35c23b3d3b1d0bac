"""Every Redis key, stream and consumer-group name in one place.

No service spells a key by hand: they all go through :class:`Keys`, so the
prefix (default ``owc``) is configurable and the layout is documented once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Keys:
    prefix: str = "owc"

    # streams shared by all channels
    @property
    def frames(self) -> str:
        return f"{self.prefix}:frames"

    @property
    def labels(self) -> str:
        return f"{self.prefix}:labels"

    @property
    def commands(self) -> str:
        return f"{self.prefix}:commands"

    @property
    def inference_workers(self) -> str:
        """Sorted set: inference worker name -> its last heartbeat (epoch ms), written whether or not
        frames arrive (the admin's "Workers" count; a stopped worker removes itself)."""
        return f"{self.prefix}:inference:workers"

    @property
    def inference_models(self) -> str:
        """Hash: inference worker name -> the model id it loaded, written with its heartbeat (the
        admin's "Model" row before the first frame; a stopped worker removes its field)."""
        return f"{self.prefix}:inference:models"

    @staticmethod
    def dlq(stream: str) -> str:
        return f"{stream}:dlq"

    # per channel
    def events(self, channel: str) -> str:
        """The append-only event log; its stream ids are the SSE event ids."""
        return f"{self.prefix}:events:{channel}"

    def channel_of(self, events_stream: str) -> str:
        """The channel whose :meth:`events` log ``events_stream`` is (its inverse)."""
        prefix = self.events("")
        if not events_stream.startswith(prefix):
            raise ValueError(f"{events_stream!r} is not an event log key (expected {prefix}<channel>)")
        return events_stream[len(prefix):]

    def state(self, channel: str) -> str:
        """Hash: counts + machine snapshot, written with the event it follows from."""
        return f"{self.prefix}:state:{channel}"

    def sessions(self, channel: str) -> str:
        """Hash: session id -> JSON summary (totals, start/end, streaks)."""
        return f"{self.prefix}:sessions:{channel}"

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

    def seq(self, channel: str) -> str:
        """Counter for frame sequence numbers (INCR: never reused after a restart)."""
        return f"{self.prefix}:seq:{channel}"

    def capture_burst(self, channel: str) -> str:
        """Pub/sub channel: inference publishes a candidate frame's seq; the channel's capture takes its
        next frame at once (:mod:`services.common.burst`). Not a key: nothing is stored."""
        return f"{self.prefix}:capture:burst:{channel}"

    def replay(self, channel: str) -> str:
        """Hash: progress of the channel's replay, so a restarted capture resumes it."""
        return f"{self.prefix}:replay:{channel}"

    @property
    def channels(self) -> str:
        """Set of channel names that have been seen by any service."""
        return f"{self.prefix}:channels"

    def lease(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    def reply(self, request_id: str) -> str:
        """List the state service pushes a command's reply onto (BLPOP-able, TTL)."""
        return f"{self.prefix}:reply:{request_id}"

    def command_done(self, channel: str) -> str:
        """Hash request_id -> reply JSON, for idempotent command processing."""
        return f"{self.prefix}:cmddone:{channel}"

    # gateway
    @property
    def overlay_presets(self) -> str:
        """Hash preset name -> JSON ``{"params": {…}, "updated_at": ms}``: the overlay designer's named
        looks, one set for the whole gateway (not per channel: a preset is a look, ``?channel=`` stays in
        the URL). Written by the gateway only (``services/gateway/presets.py``); no TTL."""
        return f"{self.prefix}:overlay:presets"

    # actions service (match-end automations)
    def action_done(self, action: str) -> str:
        """Hash ``{channel}/{event id}`` -> what the action did (JSON), written before the event is acked.

        A redelivered event whose field is present is not acted on again (chat cannot dedupe).
        """
        return f"{self.prefix}:actions:done:{action}"

    def action_dlq(self, action: str) -> str:
        """List of JSON records: events an action gave up on after its retries (newest first)."""
        return f"{self.prefix}:actions:dlq:{action}"

    def action_due(self, action: str) -> str:
        """Sorted set ``{channel}/{event id}`` -> due time (ms): the action's own queue (its lane).

        The dispatcher adds an event here (with its record in :meth:`action_pending`) in the same
        transaction that acks it; the action's lane removes it with the record of what it did. Due is
        the event's time plus ``actions.stream_delay_s`` for a delayed action, so the queue survives
        restarts and a correction inside the delay can take a pending entry back.
        """
        return f"{self.prefix}:actions:due:{action}"

    def action_pending(self, action: str) -> str:
        """Hash ``{channel}/{event id}`` -> JSON of the event a lane still has to act on (see :meth:`action_due`)."""
        return f"{self.prefix}:actions:pending:{action}"

    @property
    def action_inflight(self) -> str:
        """Hash action name -> the key its lane is acting on right now (a correction no longer takes it back)."""
        return f"{self.prefix}:actions:inflight"

    @property
    def actions_since(self) -> str:
        """Stream id from which the actions service acts (set once, on its first start): events
        older than the service itself are history, never posted again."""
        return f"{self.prefix}:actions:since"

    @property
    def action_retry(self) -> str:
        """List of dead letters queued again by ``owc actions retry|test`` or the admin page (the service pops them)."""
        return f"{self.prefix}:actions:retry"

    @property
    def action_status(self) -> str:
        """Hash action name -> JSON of its last delivery (for the admin page and ``owc actions status``)."""
        return f"{self.prefix}:actions:status"

    # Twitch (predictions, markers: services/actions/twitch)
    def twitch_prediction(self, channel: str) -> str:
        """String (JSON): the channel's current or last prediction: its Twitch id, the event id of the
        match it follows (``after``), its status and outcome ids, and the last few results that ended one
        (``resolved``, for a later undo). A restart resumes it from here."""
        return f"{self.prefix}:twitch:prediction:{channel}"

    @property
    def twitch_requests(self) -> str:
        """List of JSON requests ``{"op": "open"|"cancel", "channel", "by"}`` from the admin page and
        ``!predict`` (the actions service pops them, oldest first)."""
        return f"{self.prefix}:twitch:requests"

    @property
    def twitch_status(self) -> str:
        """Hash: the Twitch sign-in's state (``token``: ok | missing | refused | scopes, ``login``,
        ``message``) and ``markers`` (ok | offline | failed), for the admin page and ``owc actions status``."""
        return f"{self.prefix}:twitch:status"
