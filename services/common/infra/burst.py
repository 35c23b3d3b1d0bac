"""Burst confirmation: inference asks a channel's capture for its next frame at once.

Counting needs two frames that agree. Without a burst the confirming frame
comes one capture interval (250 ms) after the first; with it, inference
publishes the candidate frame's ``seq`` on the pub/sub channel
:meth:`Keys.capture_burst` and the channel's capture, which waits for its
next slot *on that subscription*, takes the next frame as soon as the
message arrives (``services/capture/schedule.py`` bounds how often).

Why pub/sub and not a list the capture ``BLPOP``s with its remaining wait
as the timeout: Redis checks blocked clients' timeouts in its cron (``hz``
10 → 100 ms steps; measured on Redis 7.0: ``BLPOP`` with a 30 ms timeout
returns after 94–115 ms), which would shake the regular schedule by up to
100 ms. A subscription is waited on client-side (``select`` on the socket
with the exact remaining time) and wakes at once on a message. A hint
nobody listens to is lost, which is right: it is only worth anything to a
capture that is running now.

The message is the candidate frame's ``seq`` as decimal text.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable

import redis

from services.common.contracts.keys import Keys

# a capture waiting for its slot looks at its stop event at least this often
STOP_CHECK_S = 0.5  # (each look is a wake-up of the capture thread: at 0.1, 10 a second)


def request_bursts(client: redis.Redis, keys: Keys, candidates: Iterable[tuple[str, int]]) -> int:
    """Publish one hint per channel (its newest candidate ``seq``); return how many captures heard it.

    Best effort: a Redis error is the caller's to ignore (a hint is never worth failing a frame for).
    """
    newest: dict[str, int] = {}
    for channel, seq in candidates:
        newest[channel] = max(seq, newest.get(channel, seq))
    if not newest:
        return 0
    if len(newest) == 1:
        ((channel, seq),) = newest.items()
        return int(client.publish(keys.capture_burst(channel), str(seq)))
    pipe = client.pipeline(transaction=False)
    for channel, seq in newest.items():
        pipe.publish(keys.capture_burst(channel), str(seq))
    return sum(int(n) for n in pipe.execute())


class BurstListener:
    """A capture's subscription to its channel's hints; :meth:`wait` replaces ``stop.wait(delay)``.

    While Redis is unreachable it waits like ``stop.wait`` and subscribes again on a later call.
    """

    def __init__(self, client: redis.Redis, keys: Keys, channel: str) -> None:
        self.client = client
        self.topic = keys.capture_burst(channel)
        self._pubsub: redis.client.PubSub | None = None
        self.received = 0  # hints heard (tests, bench)

    def _subscribed(self) -> redis.client.PubSub | None:
        if self._pubsub is None:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.topic)
            except redis.RedisError:
                pubsub.close()
                return None
            self._pubsub = pubsub
        return self._pubsub

    def wait(self, timeout_s: float, stop: threading.Event) -> int | None:
        """Wait up to ``timeout_s``; the ``seq`` of a hint as soon as one arrives, else ``None``
        (timeout, or ``stop`` set: the caller checks it)."""
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            pubsub = self._subscribed()
            if pubsub is None:
                stop.wait(min(remaining, 1.0))
                continue
            try:
                message = pubsub.get_message(timeout=min(remaining, STOP_CHECK_S))
            except (redis.RedisError, OSError):
                self.close()
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                seq = int(message["data"])
            except (TypeError, ValueError):
                continue  # not ours: ignore it
            self.received += 1
            return seq
        return None

    def close(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()
