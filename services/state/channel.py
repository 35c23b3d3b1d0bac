"""A channel in the state writer's memory, and the labels it holds back from Redis for a moment.

Labels that change nothing anyone sees are acknowledged together: one commit a second, not one a frame.

Most frames change only the machine's cursor (``last_seq``, the run of ``none``
frames, ``updated_at``). Committing each one costs five Redis round trips (WATCH,
the lease, the log's end, MULTI/EXEC) four times a second per channel for no
visible change. Such labels are *held*: the machine moves on in memory, their
acknowledgements wait, and one commit writes the snapshot and acknowledges them
all once :data:`HOLD_S` has passed — with the next label read after that (on a
live feed: no wake-up of its own), or :data:`HOLD_GRACE_S` later without one —
or at once with the next commit of the channel (an event, a command, a change
of anything the gateway shows).

Nothing is lost on a crash: a held label is still pending in the labels stream
under the writer's consumer name, so the next leader re-reads it after the last
snapshot and the rules reach the same machine (labels at or below ``last_seq``
are ignored, as for any redelivery).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.contracts.health import StateHealth
from services.common.contracts.messages import Label
from services.common.infra.streams import Delivery
from services.state.machine import Machine
from services.state.reorder import ReorderBuffer

HOLD_S = 1.0  # how long a label's acknowledgement (and the snapshot's cursor) waits for a commit at least
HOLD_GRACE_S = 0.5  # ... and at most this longer: the writer wakes for them only when no label came meanwhile


def public_view(m: Machine) -> tuple[object, ...]:
    """What a commit would change that others read (the snapshot hash's public fields but ``updated_at``)."""
    return (m.counts, m.session, m.session_started_at, m.phase, m.cooldown_until, m.last_event_id,
            m.last_event_at, m.results, m.mode, m.by_mode, m.mode_results)


@dataclass
class Held:
    """A channel's acknowledgements waiting for its next commit."""

    acks: list[bytes] = field(default_factory=list)
    since: float | None = None  # monotonic time of the oldest

    def hold(self, ids: list[bytes], now: float) -> None:
        self.acks += ids
        if self.since is None:
            self.since = now

    def wait_s(self, now: float) -> float | None:
        """Seconds until the held labels must be written (``None``: nothing held)."""
        return None if self.since is None else max(0.0, self.since + HOLD_S - now)

    def take(self) -> list[bytes]:
        acks, self.acks, self.since = self.acks, [], None
        return acks

    def __len__(self) -> int:
        return len(self.acks)


@dataclass
class ChannelState:
    machine: Machine
    buffer: ReorderBuffer[tuple[Delivery, Label]]
    last_ceiling: int | None = None  # the channel's seq counter when last read (for log lines)
    held: Held = field(default_factory=Held)  # labels handled in memory, acknowledged by the next commit

    def health(self, holder: str) -> StateHealth:
        """The channel's record for the status panel (written by the active writer)."""
        m = self.machine
        return StateHealth(
            phase=m.phase, lease_holder=holder, role="active", session=m.session, last_seq=m.last_seq,
            victories=m.counts.victories, defeats=m.counts.defeats, draws=m.counts.draws,
            cooldown_until=m.cooldown_until or 0, none_run=m.none_run, buffered=len(self.buffer),
            reorder_skipped=self.buffer.skipped,
        )
