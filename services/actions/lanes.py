"""Each action's own lane: a queue in Redis and a thread, so one slow action never holds back another.

The dispatcher (:mod:`services.actions.worker`) reads each event once, puts it on the queue of
every action that takes it (``owc:actions:due:<action>``, a sorted set by due time, and the event in
``owc:actions:pending:<action>``) and acks it, all in one script: from then on the queue is the
event's only trace, so it survives a kill -9 and a Redis restart (AOF) like the log did.

A lane works through its queue in due order. It marks the entry it is acting on
(``owc:actions:inflight``), so a correction no longer takes it back, and takes the entry off its
queue in the transaction that records the result (:class:`services.actions.delivery.Deliverer`).
A crash in between leaves the entry queued: it is acted on again after the restart, the one gap
the records cannot close (see docs/actions.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, cast

import redis

from services.actions import metrics as M
from services.actions.delivery import REDIS_DOWN, Action, Deliverer, StoppingError
from services.actions.schedule import Pending, order
from services.common.contracts.codec import text
from services.common.contracts.keys import Keys
from services.common.contracts.messages import MessageError
from services.common.infra.redisio import write_refusal

log = logging.getLogger("owc.actions")

IDLE_CHECK_S = 5.0  # a lane with nothing due looks at its queue at least this often (it is woken on new work)
PEEK = 50  # entries read per look (a lane's queue holds what is waiting out the delay or its retries)

# Queue an event on several actions' lanes and ack where it came from, atomically; a correction
# takes a still-waiting entry back instead (both are recorded as `cancelled`, neither is sent).
# KEYS: [1] the log (or the retry list), [2] the in-flight hash, then per action: due, pending, done.
# ARGV: [1] 'xack' | 'lrem', [2] the group, [3] the stream id (or the retry entry), [4] the event's key,
#       [5] the `cancelled` record, [6] '1' to act even when done; then per action: its name, its due
#       time, the key a correction takes back ('' if none), its queue record.
DISPATCH = """
local taken = {}
local n = (#KEYS - 2) / 3
for i = 0, n - 1 do
  local due, pending, done = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  local name, at, target, record = ARGV[7 + 4 * i], ARGV[8 + 4 * i], ARGV[9 + 4 * i], ARGV[10 + 4 * i]
  if target ~= '' and redis.call('ZSCORE', due, target) and redis.call('HGET', KEYS[2], name) ~= target then
    redis.call('ZREM', due, target)
    redis.call('HDEL', pending, target)
    redis.call('HSET', done, target, ARGV[5])
    redis.call('HSET', done, ARGV[4], ARGV[5])
    taken[#taken + 1] = name
  elseif ARGV[6] == '1' or redis.call('HEXISTS', done, ARGV[4]) == 0 then
    redis.call('ZADD', due, at, ARGV[4])
    redis.call('HSET', pending, ARGV[4], record)
  end
end
if ARGV[1] == 'xack' then
  redis.call('XACK', KEYS[1], ARGV[2], ARGV[3])
else
  redis.call('LREM', KEYS[1], -1, ARGV[3])
end
return taken
"""

# Mark an entry in flight if it is still queued. KEYS: due, in-flight hash. ARGV: action name, key.
CLAIM = """
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


class Lane:
    """One action's queue and the thread that works through it."""

    def __init__(self, action: Action, client: redis.Redis, keys: Keys, deliverer: Deliverer) -> None:
        self.action = action
        self.name = action.name
        self.client = client
        self.keys = keys
        self.deliverer = deliverer
        self.wake = threading.Event()
        self.due_key = keys.action_due(action.name)
        self.pending_key = keys.action_pending(action.name)
        self._claim = client.register_script(CLAIM)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ reading the queue

    def queued(self) -> list[Pending]:
        """Every entry waiting in this lane (a correction looks for what it takes back here)."""
        out: list[Pending] = []
        for key, raw in self.client.hgetall(self.pending_key).items():
            try:
                out.append(Pending.from_json(raw))
            except (ValueError, KeyError, TypeError, MessageError):
                log.error("%s: dropping an unreadable queue entry %r", self.name, key)
                self.client.hdel(self.pending_key, key)
                self.client.zrem(self.due_key, key)
        return out

    def next_due(self, now_ms: int) -> tuple[Pending | None, float]:
        """The next entry due by ``now_ms`` (in due, then log, order), else how long until one is."""
        rows = cast(list[tuple[bytes, float]], self.client.zrange(self.due_key, 0, PEEK - 1, withscores=True))
        if not rows:
            return None, IDLE_CHECK_S
        rows = sorted(rows, key=lambda r: (r[1], order(text(r[0]))))
        key, score = rows[0]
        if score > now_ms:
            return None, min(IDLE_CHECK_S, (score - now_ms) / 1000)
        raw = self.client.hget(self.pending_key, key)
        try:
            if raw is None:
                raise KeyError("no record")
            return Pending.from_json(raw), 0.0
        except (ValueError, KeyError, TypeError, MessageError) as exc:
            log.error("%s: dropping queue entry %s: %s", self.name, text(key), exc)
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(self.due_key, key)
            pipe.hdel(self.pending_key, key)
            pipe.execute()
            return None, 0.0

    # ------------------------------------------------------------------ the thread

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stop,), name=f"lane-{self.name}", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def run(self, stop: threading.Event) -> None:
        refusing = ""
        while not stop.is_set():
            try:
                entry, wait = self.next_due(int(time.time() * 1000))
                if entry is not None:
                    self.act(entry)
                elif wait > 0:
                    self.wake.wait(wait)
                    self.wake.clear()
                refusing = ""
            except StoppingError:
                break
            except REDIS_DOWN:
                stop.wait(0.5)  # the dispatcher says it once; the queue is in Redis, nothing is lost
            except redis.ResponseError as exc:
                refused = write_refusal(exc)
                if refused is None:
                    log.exception("%s: the lane met an unexpected Redis error", self.name)
                elif refused != refusing:
                    refusing = refused
                stop.wait(0.5)
            except Exception:  # a bug must not end this lane silently for the rest of the evening
                log.exception("%s: the lane failed; going on", self.name)
                stop.wait(1.0)

    def act(self, entry: Pending) -> str:
        """Act on one due entry (unless a correction took it back meanwhile); its result is recorded and the
        entry taken off the queue in one transaction."""
        key = entry.key
        if not self._claim(keys=[self.due_key, self.keys.action_inflight], args=[self.name, key]):
            return "taken back"
        late = time.time() * 1000 - entry.due
        if late > 5000:
            log.info("%s: event %s is %.1f s past its due time", self.name, key, late / 1000)

        def finish(pipe: Any) -> None:
            pipe.zrem(self.due_key, key)
            pipe.hdel(self.pending_key, key)
            pipe.hdel(self.keys.action_inflight, self.name)

        return self.deliverer.deliver(self.action, entry.ctx, force=entry.force, finish=finish)


def cancelled_record(by: str, at_ms: int) -> str:
    """What the done hash keeps for a result and its correction that cancelled out inside the delay."""
    return json.dumps({"status": "cancelled", "result": f"taken back inside the stream delay by {by}",
                       "at": at_ms})


def count_cancelled(names: list[Any]) -> None:
    for raw in names:
        M.DELIVERIES.labels(text(raw), "cancelled").inc()
