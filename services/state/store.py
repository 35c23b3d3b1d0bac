"""Redis I/O of the state service: load/verify a channel, commit atomically, the lease.

A commit is one MULTI/EXEC: XADD the events (with the ids the rules gave
them), HSET the snapshot (public fields + private ``machine``), HSET the
session summaries, the command replies (LPUSH + EXPIRE + the idempotency
hash) and the XACKs of the stream entries that led to it. It runs under
WATCH of the lease and the event log, after checking that this instance
still holds the lease and that the log ends where the machine thinks it
does, so a deposed writer can never commit. A commit that writes only the
snapshot and acknowledgements (a held one, :mod:`services.state.channel`) is one
script doing the same checks and writes (atomic like MULTI/EXEC): one round trip
instead of four.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import redis
from redis.exceptions import ResponseError, WatchError

from services.common.contracts.codec import text
from services.common.contracts.keys import GROUP_STATE, Keys
from services.common.contracts.messages import Event, MessageError, Reply
from services.common.contracts.sessions import SessionSummary
from services.common.contracts.streamids import id_after
from services.common.infra.streams import xadd_message
from services.state.fold import fold
from services.state.history import fold_counts, summarize_sessions
from services.state.machine import MODE_RESULTS_FIELD, Machine
from services.state.rules import Rules

log = logging.getLogger("owc.state.store")

REPLY_TTL_S = 60
MACHINE_FIELD = b"machine"

# Renew only our own lease (compare-and-pexpire); 1 = renewed.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Take the lease from a holder known to be dead (compare-and-set).
_STEAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""



# A commit that writes only the snapshot and acknowledges labels (a held commit: once a second per channel on
# a live feed), with the same guards as MULTI/EXEC under WATCH — our lease, the log ending where the machine
# thinks — in one script instead of four round trips; it renews the lease too (our lease: its TTL again, as
# Lease.renew does), so a writer that commits needs no renewal of its own. KEYS: lease, events, state hash,
# channels set, the acked stream; ARGV: holder, expected last event id ('' = none), channel, group, field
# count n, the lease's TTL in ms, the snapshot's n names and values, then the ids to acknowledge. Returns {1},
# {0, holder} (lease lost) or {-1, last id}.
_SNAPSHOT_COMMIT = """
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then return {0, holder or ''} end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local last = ''
if redis.call('EXISTS', KEYS[2]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
  if last == '0-0' then last = '' end
end
if last ~= ARGV[2] then return {-1, last} end
local n = tonumber(ARGV[5])
local hset = {'HSET', KEYS[3]}
for i = 7, 6 + 2 * n do hset[#hset + 1] = ARGV[i] end
redis.call(unpack(hset))
redis.call('SADD', KEYS[4], ARGV[3])
if #ARGV > 6 + 2 * n then
  local xack = {'XACK', KEYS[5], ARGV[4]}
  for i = 7 + 2 * n, #ARGV do xack[#xack + 1] = ARGV[i] end
  redis.call(unpack(xack))
end
return {1}
"""


class LeaseLostError(RuntimeError):
    """This instance no longer holds the single-writer lease."""


class ConflictError(RuntimeError):
    """The channel's log changed under us (another writer): reload and retry."""


def _pid_namespace() -> str:
    """The PID namespace id on Linux (containers sharing a hostname differ here), else ''."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return "".join(ch for ch in link if ch.isdigit())


def new_holder_id() -> str:
    """``host-pid-ns.random``: who holds the lease, and enough to tell whether it still runs."""
    return f"{socket.gethostname()}-{os.getpid()}-{_pid_namespace()}.{uuid.uuid4().hex[:6]}"


def holder_is_dead(holder: str) -> bool:
    """True only when ``holder`` was a process of this host and PID namespace that no longer runs.

    Same host, namespace and pid as ours but another id: an earlier
    incarnation. Same host and namespace, a pid that does not exist: it died.
    Anything else (another host or namespace, a live pid, even a reused one,
    an id without a namespace): not known to be dead, the lease is left to expire.
    """
    parts = holder.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or "." not in parts[2]:
        return False
    host, pid, ns = parts[0], int(parts[1]), parts[2].split(".", 1)[0]
    if host != socket.gethostname() or not ns or ns != _pid_namespace():
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@dataclass
class Lease:
    client: redis.Redis
    key: str
    holder: str
    ttl_ms: int

    def acquire(self) -> bool:
        """Take the lease if it is free, or held by a process of this host that is gone."""
        if self.client.set(self.key, self.holder, nx=True, px=self.ttl_ms):
            return True
        current = self.current()
        if current is None or current == self.holder or not holder_is_dead(current):
            return False
        if self.client.eval(_STEAL, 1, self.key, current, self.holder, self.ttl_ms):
            log.warning("took over the lease of %s: that process no longer runs on this host", current)
            return True
        return False

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.holder, self.ttl_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.holder)

    def current(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else text(value)


@dataclass
class Commit:
    """Everything one MULTI/EXEC writes for a channel."""

    channel: str
    before: Machine
    after: Machine
    events: list[Event] = field(default_factory=list)
    sessions: dict[str, SessionSummary] = field(default_factory=dict)
    replies: list[tuple[Reply, bool]] = field(default_factory=list)  # (reply, remember for idempotency)
    acks: dict[str, list[bytes]] = field(default_factory=dict)  # stream -> entry ids


def _last_generated_id(pipe: redis.client.Pipeline, key: str) -> str:
    try:
        info = pipe.xinfo_stream(key)
    except ResponseError:  # no such key: nothing was ever appended
        return ""
    data = cast(dict[Any, Any], info)
    last = text(data.get("last-generated-id") or data.get(b"last-generated-id") or b"0-0")
    return "" if last == "0-0" else last


class Store:
    def __init__(self, client: redis.Redis, keys: Keys, lease: Lease) -> None:
        self.client = client
        self.keys = keys
        self.lease = lease
        self._snapshot_script: Any = None

    # ------------------------------------------------------------------ reading

    def read_events(self, channel: str, count: int = 1000) -> list[Event]:
        out: list[Event] = []
        start = "-"
        key = self.keys.events(channel)
        while True:
            raw = self.client.xrange(key, min=start, max="+", count=count)
            chunk = cast(list[tuple[bytes, dict[bytes, bytes]]], raw)
            for eid, fields in chunk:
                try:
                    out.append(Event.from_fields(fields, id=eid))
                except MessageError as exc:
                    # One unreadable entry (written by hand, or by a newer version) must not
                    # stop counting on every channel: skip it, loudly, like the gateway does.
                    log.error("channel %s: skipping unreadable event %s in the log: %s", channel, text(eid), exc)
            if len(chunk) < count:
                return out
            start = id_after(chunk[-1][0])

    def load(self, channel: str, rules: Rules) -> Machine:
        """The channel's machine: the snapshot, verified against the event log (the log wins)."""
        raw = self.client.hget(self.keys.state(channel), MACHINE_FIELD)
        events = self.read_events(channel)
        self.fill_summaries(channel, events)
        folded = fold(events, rules.cooldown_ms)
        if events and fold_counts(events) != folded.counts:
            log.error(
                "channel %s: the event log's deltas add up to %s but its last event says %s; "
                "the log was edited by hand? using the counts the events carry",
                channel, fold_counts(events).as_dict(), folded.counts.as_dict(),
            )
        if raw is None:
            if events:
                log.warning("channel %s: no snapshot; rebuilt from %d events of the log", channel, len(events))
            return folded
        try:
            snap = Machine.from_json(cast(bytes, raw))
        except MessageError as exc:
            log.error("channel %s: the snapshot is unreadable (%s); rebuilt from the event log", channel, exc)
            return folded
        if f'"{MODE_RESULTS_FIELD}":'.encode() not in cast(bytes, raw):
            # written before per-mode results: the log has them (the undo stack too, which records them)
            log.info("channel %s: per-mode streaks and last results taken from the event log", channel)
            snap = replace(snap, mode_results=folded.mode_results, undo=folded.undo)
        problems = []
        if snap.last_event_id != folded.last_event_id:
            problems.append(f"last event {snap.last_event_id or '-'} vs log {folded.last_event_id or '-'}")
        if snap.counts != folded.counts:
            problems.append(f"counts {snap.counts.as_dict()} vs log {folded.counts.as_dict()}")
        if snap.session != folded.session:
            problems.append(f"session {snap.session!r} vs log {folded.session!r}")
        if (snap.mode, snap.by_mode, snap.mode_results) != (folded.mode, folded.by_mode, folded.mode_results):
            problems.append(f"mode {snap.mode!r} {_modetext(snap)} vs log {folded.mode!r} {_modetext(folded)}")
        if problems:
            log.error(
                "channel %s: SNAPSHOT AND EVENT LOG DISAGREE (%s); trusting the event log",
                channel, "; ".join(problems),
            )
            # never count a frame twice: keep the newest frame either of them saw
            return replace(folded, last_seq=max(folded.last_seq, snap.last_seq))
        return snap

    def channel_names(self) -> list[str]:
        """Every channel some service has announced (``owc:channels``), sorted."""
        return sorted(text(name) for name in cast(set[bytes], self.client.smembers(self.keys.channels)))

    def fill_summaries(self, channel: str, events: Sequence[Event]) -> None:
        """Write the summary of each session of the log that has none (a log older than the
        summaries, one deleted by hand): the gateway only reads the summaries this service keeps.

        HSETNX: a summary a commit wrote meanwhile is newer and stays.
        """
        key = self.keys.sessions(channel)
        have = {text(k) for k in cast(list[bytes], self.client.hkeys(key))}
        missing = {e.session for e in events} - have
        if not missing:
            return
        pipe = self.client.pipeline(transaction=False)
        for summary in summarize_sessions(events):
            if summary.session in missing:
                pipe.hsetnx(key, summary.session, summary.to_json())
        pipe.execute()
        log.info("channel %s: wrote the missing summaries of %d session(s) from the event log", channel, len(missing))

    def stored_reply(self, channel: str, request_id: str) -> Reply | None:
        raw = self.client.hget(self.keys.command_done(channel), request_id)
        if raw is None:
            return None
        try:
            return Reply.from_json(cast(bytes, raw))
        except MessageError:
            return None

    # ------------------------------------------------------------------ writing

    def push_reply(self, reply: Reply, acks: Mapping[str, Sequence[bytes]] | None = None) -> None:
        """A reply outside a channel commit (a repeated request, an unreadable command)."""
        pipe = self.client.pipeline(transaction=True)
        key = self.keys.reply(reply.request_id)
        pipe.lpush(key, reply.to_json())
        pipe.expire(key, REPLY_TTL_S)
        for stream, ids in (acks or {}).items():
            if ids:
                pipe.xack(stream, GROUP_STATE, *ids)
        pipe.execute()

    def commit(self, c: Commit) -> None:
        """Write ``c`` atomically, or raise LeaseLostError / ConflictError having written nothing.

        A commit renews the lease as :meth:`Lease.renew` would (its TTL again, only while it is ours): on a
        live feed the writer commits every second or so and needs no renewal round trip of its own.
        """
        lease_key = self.keys.lease("state")
        events_key = self.keys.events(c.channel)
        if not c.events and not c.sessions and not c.replies and len([s for s, ids in c.acks.items() if ids]) <= 1:
            self._commit_snapshot(c, lease_key, events_key)
            return
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(lease_key, events_key)  # type: ignore[no-untyped-call]
                holder = pipe.get(lease_key)
                if holder is None or text(holder) != self.lease.holder:
                    raise LeaseLostError(f"the lease is held by {holder!r}, not {self.lease.holder}")
                last = _last_generated_id(pipe, events_key)
                if last != c.before.last_event_id:
                    raise ConflictError(
                        f"channel {c.channel}: the log ends at {last or '-'}, "
                        f"expected {c.before.last_event_id or '-'}"
                    )
                pipe.multi()
                pipe.pexpire(lease_key, self.lease.ttl_ms)  # ours (checked under WATCH): renewed with the commit
                for ev in c.events:
                    xadd_message(pipe, events_key, ev, id=ev.id)
                fields = dict(c.after.snapshot().to_fields())
                fields[MACHINE_FIELD] = c.after.to_json().encode()
                pipe.hset(self.keys.state(c.channel), mapping=fields)  # type: ignore[arg-type]
                if c.sessions:
                    pipe.hset(
                        self.keys.sessions(c.channel),
                        mapping={k: s.to_json() for k, s in c.sessions.items()},
                    )
                for reply, remember in c.replies:
                    rkey = self.keys.reply(reply.request_id)
                    pipe.lpush(rkey, reply.to_json())
                    pipe.expire(rkey, REPLY_TTL_S)
                    if remember:
                        pipe.hset(self.keys.command_done(c.channel), reply.request_id, reply.to_json())
                pipe.sadd(self.keys.channels, c.channel)
                for stream, ids in c.acks.items():
                    if ids:
                        pipe.xack(stream, GROUP_STATE, *ids)
                pipe.execute()
            except WatchError:
                raise ConflictError(f"channel {c.channel}: the lease or the log changed during the commit") from None


    def _commit_snapshot(self, c: Commit, lease_key: str, events_key: str) -> None:
        """:meth:`commit` of a snapshot and acknowledgements only: one script, the same guards."""
        if self._snapshot_script is None:
            self._snapshot_script = self.client.register_script(_SNAPSHOT_COMMIT)
        fields = dict(c.after.snapshot().to_fields())
        fields[MACHINE_FIELD] = c.after.to_json().encode()
        stream, ids = next(((s, i) for s, i in c.acks.items() if i), (self.keys.labels, []))
        args: list[Any] = [self.lease.holder, c.before.last_event_id, c.channel, GROUP_STATE, len(fields),
                           self.lease.ttl_ms]
        for name, value in fields.items():
            args += (name, value)
        args += ids
        raw = cast(list[Any], self._snapshot_script(
            keys=[lease_key, events_key, self.keys.state(c.channel), self.keys.channels, stream], args=args))
        if int(raw[0]) == 0:
            raise LeaseLostError(f"the lease is held by {text(raw[1]) or None!r}, not {self.lease.holder}")
        if int(raw[0]) == -1:
            raise ConflictError(f"channel {c.channel}: the log ends at {text(raw[1]) or '-'}, "
                                f"expected {c.before.last_event_id or '-'}")


def _modetext(m: Machine) -> str:
    return f"{ {k: v.as_dict() for k, v in m.by_mode.items()} } results {m.mode_results}"


def ids_of(items: Iterable[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for stream, eid in items:
        out.setdefault(stream, []).append(eid)
    return out
