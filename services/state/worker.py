"""The state service loop: lease, read labels + commands, apply the rules, commit.

Single-threaded on purpose: one instance holds the lease and does
everything (reads, rules, commits, lease renewal) in one loop, so there is
no lock and no race between a renewal and a commit. A second instance
waits as a hot standby, trying ``SET NX`` twice a second; when the
leader dies its lease expires and the standby takes over within about
``lease_ttl_ms`` + 0.5 s. The active writer always uses the same consumer
name, so a new leader first re-reads the pending entries the old one had
not acked (nothing to wait for) before reading new ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast

import redis

from services.common.config.settings import Settings
from services.common.contracts import health
from services.common.contracts.keys import InvalidChannelError, Keys, validate_channel
from services.common.contracts.messages import PHASES, Event, Label, MessageError
from services.common.contracts.sessions import SessionSummary
from services.common.infra.redisio import WriteOutage, write_refusal
from services.common.infra.streams import Delivery
from services.state import metrics as M
from services.state.channel import HOLD_GRACE_S, ChannelState, public_view
from services.state.commands import handle_command
from services.state.history import session_updates
from services.state.inbox import QUIET_CHECK_S, Inbox
from services.state.machine import Machine
from services.state.reorder import ReorderBuffer
from services.state.rules import LabelInput, Rules, transition
from services.state.store import Commit, ConflictError, Lease, LeaseLostError, Store, new_holder_id

log = logging.getLogger("owc.state")

HEALTH_EVERY_S = 2.0  # a record that has not changed: every HEALTH_REFRESH_S
# the longest blocking read (each one that times out is a wake-up; the lease renewal comes first); quiet: 2 s
MAX_BLOCK_MS, QUIET_BLOCK_MS = 1000, 2000


class StateWorker:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        settings: Settings,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        s = settings.state
        self.client = client
        self.keys = keys
        self.settings = settings
        self.rules = Rules.from_settings(s)
        self.clock = clock
        self.lease = Lease(client, keys.lease("state"), holder or new_holder_id(), s.lease_ttl_ms)
        self.store = Store(client, keys, self.lease)
        claim_idle = max(5000, 2 * s.reorder_window_ms + 1000)
        self.inbox = Inbox(client, keys, claim_idle)
        self.labels, self.commands = self.inbox.labels, self.inbox.commands
        self.channels: dict[str, ChannelState] = {}
        self.leader = False
        self.processed = 0
        self._renew_every_s = s.lease_ttl_ms / 3000.0
        self._standby_poll_s = min(0.5, s.lease_ttl_ms / 10000.0)
        self._next_renew = 0.0
        self._health_at = float("-inf")  # health written, orphans checked
        self._health_cadence = health.Cadence(HEALTH_EVERY_S)
        self.outage = WriteOutage(log, "counting paused, nothing lost", "counting goes on")

    @property
    def holder(self) -> str:
        return self.lease.holder

    def now_ms(self) -> int:
        """Wall clock (events' ts, command deadlines)."""
        return int(self.clock() * 1000)

    @staticmethod
    def arrival_ms() -> int:
        """Monotonic clock for the reorder window (a wall-clock jump must not release or hold labels)."""
        return int(time.monotonic() * 1000)

    # ------------------------------------------------------------------ lease

    def _try_acquire(self) -> bool:
        if not self.lease.acquire():
            return False
        self.leader = True
        self._reset()
        self._next_renew = time.monotonic() + self._renew_every_s
        M.LEASE_HOLDER.set(1)
        M.LEASE_CHANGES.labels("acquired").inc()
        log.info("state: %s took the single-writer lease; now the active writer", self.holder)
        for name in self.store.channel_names():
            self.channel(name)  # loading a channel fills in the session summaries it lacks
        return True

    def _maintain_lease(self) -> None:
        if time.monotonic() < self._next_renew:
            return
        if not self.lease.renew():
            raise LeaseLostError(f"could not renew the lease (held by {self.lease.current()!r})")
        self._next_renew = time.monotonic() + self._renew_every_s

    def _step_down(self, reason: str) -> None:
        if self.leader:
            log.warning("state: %s is no longer the active writer: %s", self.holder, reason)
            M.LEASE_CHANGES.labels("lost").inc()
        self.leader = False
        M.LEASE_HOLDER.set(0)
        self._reset()

    def _reset(self) -> None:
        """Forget everything in memory; it is reloaded from Redis (the truth) on demand."""
        self.channels = {}
        self.inbox.reread = True

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, max_messages: int | None = None) -> int:
        """Run until ``stop`` is set (or ``max_messages`` entries were handled); return that count."""
        r = self.rules
        log.info(
            "state: %s starting; rules: min_confidence=%s required_consecutive=%d max_gap_ms=%d cooldown_s=%g "
            "required_none=%d reorder_window_ms=%d", self.holder, r.min_confidence, r.required_consecutive,
            r.max_gap_ms, r.cooldown_ms / 1000, r.required_none, self.settings.state.reorder_window_ms,
        )
        standing_by = False
        try:
            while not stop.is_set():
                if max_messages is not None and self.processed >= max_messages:
                    break
                try:
                    self.inbox.ensure_groups()
                    if not self.leader and not self._try_acquire():
                        if not standing_by:
                            log.info("state: %s is active; standing by to take over", self.lease.current())
                            standing_by = True
                        stop.wait(self._standby_poll_s)
                        continue
                    standing_by = False
                    self._maintain_lease()
                    self.step()
                    self.outage.ok()
                except LeaseLostError as exc:
                    self._step_down(str(exc))
                except ConflictError as exc:
                    M.CONFLICTS.inc()
                    log.warning("state: %s; reloading from Redis", exc)
                    self._reset()
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                    log.warning("state: Redis is unavailable (%s); retrying", exc)
                    self._reset()
                    stop.wait(0.5)
                except redis.ResponseError as exc:
                    cause = write_refusal(exc)
                    if cause is None:
                        raise
                    # Nothing was committed (MULTI/EXEC is all or nothing) and nothing acked: the labels
                    # and commands wait in their streams; reload from Redis once it can write again.
                    self._reset()
                    stop.wait(self.outage.failed(cause))
        finally:
            if self.leader:
                try:
                    self._write_held(force=True)
                    self.lease.release()
                    log.info("state: %s released the lease", self.holder)
                except (redis.RedisError, LeaseLostError, ConflictError):
                    pass
                self.leader = False
                M.LEASE_HOLDER.set(0)
        return self.processed

    def step(self) -> None:
        """One round: read what is there, handle it, commit; publish health now and then."""
        deliveries = self.inbox.read(self._block_ms)
        for delivery in deliveries:
            if delivery.stream == self.keys.commands:
                self._handle_command(delivery)
            else:
                self._buffer_label(delivery)
        self._flush_labels()
        self._write_held()
        if time.monotonic() - self._health_at >= (QUIET_CHECK_S if self.inbox.quiet() else HEALTH_EVERY_S):
            # reclaim, orphans and the health records that are due: one round trip
            self.inbox.check(sum(len(ch.buffer) + len(ch.held) for ch in self.channels.values()),
                             also=self._queue_health)
            self._health_at = time.monotonic()

    def _block_ms(self) -> int:
        now = self.arrival_ms()
        block = QUIET_BLOCK_MS if self.inbox.quiet() else MAX_BLOCK_MS
        until_renew = self._next_renew - time.monotonic()
        if until_renew > 0:  # wake for the lease's renewal in time (every lease_ttl_ms / 3)
            block = min(block, max(1, int(until_renew * 1000)))
        for ch in self.channels.values():
            wait = ch.buffer.wait_ms(now)
            if wait is not None:
                block = min(block, max(1, wait))
            if (held := ch.held.wait_s(time.monotonic())) is not None:
                # due held labels are written by the step after the next read: on a live feed the next label
                # comes first (no wake-up of its own); without one, HOLD_GRACE_S after they were due
                block = min(block, max(1, int((held + HOLD_GRACE_S) * 1000)))
        return block

    # ------------------------------------------------------------------ channels

    def channel(self, name: str) -> ChannelState:
        state = self.channels.get(name)
        if state is None:
            machine = self.store.load(name, self.rules)
            ceiling = self._seq_ceiling(name)
            if ceiling is not None and max(machine.last_seq, machine.last_error_seq) > ceiling:
                # Saved before labels were checked against the counter: one bogus seq stopped the channel.
                log.warning(
                    "channel %s: the last frame seen has seq %d but capture has allocated only up to %d; "
                    "that seq was bogus, going on from %d",
                    name, max(machine.last_seq, machine.last_error_seq), ceiling, ceiling,
                )
                M.LABELS_SUSPECT.inc()
                machine = replace(machine, last_seq=min(machine.last_seq, ceiling),
                                  last_error_seq=min(machine.last_error_seq, ceiling))
            next_seq = machine.last_seq + 1 if machine.last_seq >= 0 else None
            state = ChannelState(machine, ReorderBuffer(self.settings.state.reorder_window_ms, next_seq))
            self.channels[name] = state
            self._set_phase(name, machine)
        return state

    def _set_phase(self, channel: str, machine: Machine) -> None:
        for phase in PHASES:
            M.PHASE.labels(channel, phase).set(1 if machine.phase == phase else 0)

    def _commit(self, commit: Commit) -> None:
        if held := self.channels[commit.channel].held:  # acknowledged by any commit (its snapshot covers them)
            commit.acks.setdefault(self.keys.labels, []).extend(held.take())
        started = time.perf_counter()
        renewed_from = time.monotonic()
        self.store.commit(commit)
        M.COMMIT_SECONDS.observe(time.perf_counter() - started)
        # the commit renewed the lease (Store.commit): the next renewal is due a renewal period after it
        self._next_renew = max(self._next_renew, renewed_from + self._renew_every_s)
        for ev in commit.events:
            M.EVENTS.labels(ev.type, ev.outcome or "").inc()
            if ev.type in ("detected", "undone", "session_started", "imported") or ev.source == "manual":
                log.info(
                    "channel %s: %s %s%s -> %s%s (event %s)", commit.channel, ev.type, ev.outcome or "",
                    f" {ev.delta:+d}" if ev.delta else "", ev.counts.as_dict(), f" in {ev.mode!r}" * bool(ev.mode),
                    ev.id,
                )
        self.channels[commit.channel].machine = commit.after
        self._set_phase(commit.channel, commit.after)

    # ------------------------------------------------------------------ labels

    def _buffer_label(self, delivery: Delivery) -> None:
        try:
            label = Label.from_fields(delivery.fields)
            validate_channel(label.channel)
        except (MessageError, InvalidChannelError) as exc:
            self.labels.dead_letter(delivery, str(exc))
            M.DEAD_LETTERS.labels("labels").inc()
            self.processed += 1
            return
        M.LABELS_CONSUMED.labels(label.label).inc()
        self.channel(label.channel).buffer.push(
            label.seq, (delivery, label), self.arrival_ms(), verdict=label.label != "error"
        )

    def _seq_ceiling(self, channel: str) -> int | None:
        """The highest seq capture has allocated for the channel (None: no capture has run)."""
        raw = self.client.get(self.keys.seq(channel))
        try:
            return None if raw is None else int(cast(bytes, raw))
        except ValueError:
            return None

    def _set_aside(self, name: str, ch: ChannelState, acks: list[bytes]) -> None:
        """Log, count and ack the labels the reorder buffer found suspect."""
        for seq, (delivery, label) in ch.buffer.take_suspects():
            M.LABELS_SUSPECT.inc()
            acks.append(delivery.id)
            expected = ch.buffer.next_seq
            log.warning(
                "channel %s: ignoring a %s label with seq %d: no capture allocated it (the channel's next seq "
                "is %s, its counter %s is at %s); a frame written to %s by hand or by another tool?",
                name, label.label, seq, "unknown" if expected is None else expected, self.keys.seq(name),
                ch.last_ceiling if ch.last_ceiling is not None else "unset", self.keys.frames,
            )

    def _flush_labels(self) -> None:
        now = self.now_ms()
        arrival_now = self.arrival_ms()
        for name, ch in list(self.channels.items()):
            skipped_before = ch.buffer.skipped
            ceiling = None
            if ch.buffer.would_jump(arrival_now):
                ceiling = ch.last_ceiling = self._seq_ceiling(name)
            ready = ch.buffer.pop(arrival_now, ceiling)
            if ch.buffer.skipped > skipped_before:
                M.REORDER_SKIPS.inc(ch.buffer.skipped - skipped_before)
                log.debug("channel %s: skipped %d missing frames", name, ch.buffer.skipped - skipped_before)
            acks: dict[str, list[bytes]] = {self.keys.labels: []}
            self._set_aside(name, ch, acks[self.keys.labels])
            set_aside = len(acks[self.keys.labels])
            if not ready and not set_aside:
                continue
            before = machine = ch.machine
            events: list[Event] = []
            sessions: dict[str, SessionSummary] = {}
            for _seq, (delivery, label) in ready:
                if label.seq <= machine.last_seq:
                    M.LABELS_IGNORED.inc()
                    acks[self.keys.labels].append(delivery.id)
                    continue
                try:
                    after, new = transition(machine, LabelInput(label, now), self.rules)
                except Exception as exc:  # a bug must not crash-loop the service on this entry
                    log.exception("channel %s: label seq %d broke the rules; moved to the DLQ", name, label.seq)
                    self.labels.dead_letter(delivery, f"state rules failed: {exc!r}")
                    M.DEAD_LETTERS.labels("labels").inc()
                    continue
                if new:
                    sessions.update(session_updates(machine, after, new))
                machine = after
                events += new
                acks[self.keys.labels].append(delivery.id)
            if not events and not sessions and not set_aside and public_view(machine) == public_view(before):
                ch.machine = machine  # nothing anyone sees changed: written after HOLD_S (services/state/channel.py)
                ch.held.hold(acks[self.keys.labels], time.monotonic())
            else:
                self._commit(Commit(name, before, machine, events, sessions, [], acks))
            self.processed += len(ready) + set_aside

    def _write_held(self, force: bool = False) -> None:
        """Commit the channels whose held labels are due (all of them with ``force``)."""
        for name, ch in list(self.channels.items()):
            if (wait := ch.held.wait_s(time.monotonic())) is not None and (force or wait <= 0):
                self._commit(Commit(name, ch.machine, ch.machine, acks={self.keys.labels: []}))

    # ------------------------------------------------------------------ commands

    def _handle_command(self, delivery: Delivery) -> None:
        self.processed += 1
        handle_command(self, delivery, self._commit)

    # ------------------------------------------------------------------ health

    def _queue_health(self, pipe: redis.client.Pipeline) -> None:
        """The channels' health records that are due, into ``pipe`` (the periodic check's round trip)."""
        now = time.monotonic()
        for name, ch in self.channels.items():
            if self._health_cadence.due(name, record := ch.health(self.holder), now):
                health.queue(pipe, self.keys, name, record)
                self._health_cadence.sent(name, record, now)
