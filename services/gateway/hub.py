"""SSE fan-out: ONE event-log reader per channel, shared by all its clients.

A channel's :class:`ChannelHub` starts with its first client and stops with
its last. It XREADs the channel's event log, builds the status message of
each new event once (JSON), and puts it on every client's bounded queue. A
client that falls too far behind is disconnected; its browser reconnects
with ``Last-Event-ID`` and replays what it missed from the log, so a slow
client never slows the others down nor loses events.

No gap, no duplicate: a client registers with the hub *before* it reads the
snapshot / replays the log, and then skips queued entries whose id is not
greater than the last id it sent (stream ids are totally ordered).

No lingering client: the hub forgets a client the moment it drops it, and a
request's subscription is a context manager closed by the request's own exit
stack (:meth:`Hubs.subscription`), never by the finalisation of an abandoned
async generator — a stalled connection's generator sits at a ``yield`` and
would only be finalised by the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from services.common.contracts.messages import Event, StateSnapshot
from services.common.contracts.streamids import parse_id
from services.gateway import metrics
from services.gateway.models import Health
from services.gateway.store import GatewayStore
from services.gateway.views import health_out, stream_status

log = logging.getLogger("owc.gateway.sse")

CLIENT_QUEUE = 256
READ_BLOCK_MS = 2000  # well under the client's socket timeout (redis-py uses the 5 s connect timeout)
READ_COUNT = 200
REPLAY_CHUNK = 500


@dataclass(frozen=True)
class Message:
    id: str | None  # event-log id; None for a snapshot sent on resume
    data: str  # StreamStatus JSON


def stream_message(channel: str, snap: StateSnapshot | None, event: Event | None, health: Health) -> Message:
    """The full status as of ``event`` (counts from the event itself), or the snapshot if no event."""
    out = stream_status(channel, snap, event, health)
    return Message(event.id if event is not None else out.last_event_id or None, out.model_dump_json())


@dataclass(eq=False)
class Client:
    queue: asyncio.Queue[Message | None] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: bool = False

    def offer(self, message: Message) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.close(dropped=True)

    def close(self, dropped: bool = False) -> None:
        if dropped and not self.dropped:
            metrics.SSE_DROPPED.inc()
            log.warning("an SSE client fell %d messages behind; disconnecting it (it will resume)", CLIENT_QUEUE)
        self.dropped = self.dropped or dropped
        # make room for the end marker so the client's generator wakes up and ends
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()


class ChannelHub:
    def __init__(self, store: GatewayStore, channel: str, on_drop: Callable[[ChannelHub, Client], None]) -> None:
        self.store = store
        self.channel = channel
        self.on_drop = on_drop  # called once for each client the hub disconnects
        self.clients: set[Client] = set()
        self.position = "0-0"
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.position = await self.store.last_stream_id(self.channel)
        self.task = asyncio.create_task(self._run(), name=f"sse-reader-{self.channel}")
        metrics.SSE_READERS.inc()

    async def stop(self) -> None:
        if self.task is not None:
            task = self.task
            # Cancel until it ends: a cancellation that lands just as the reader starts its next XREAD
            # can be lost inside redis-py (seen on Python 3.11), and the reader would then run on forever.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.task = None
            metrics.SSE_READERS.dec()
        for client in list(self.clients):
            client.close()
        self.clients.clear()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                self.position, events = await self.store.wait_for_events(
                    self.channel, self.position, READ_COUNT, READ_BLOCK_MS
                )
                backoff = 0.1
                if not events or not self.clients:
                    continue
                snap = await self.store.snapshot(self.channel)
                health = health_out(await self.store.health(self.channel))
                for event in events:
                    message = stream_message(self.channel, snap, event, health)
                    metrics.SSE_EVENTS.inc()
                    for client in list(self.clients):
                        client.offer(message)
                        if client.dropped:
                            self.on_drop(self, client)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning(
                    "channel %s: reading the event log failed (%s); retrying in %.1f s", self.channel, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("channel %s: SSE reader error; retrying", self.channel)
                await asyncio.sleep(1.0)


class Hubs:
    """The per-channel hubs of one app."""

    def __init__(self, store: GatewayStore) -> None:
        self.store = store
        self.hubs: dict[str, ChannelHub] = {}
        self.lock = asyncio.Lock()
        self.closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def subscribe(self, channel: str) -> Client:
        async with self.lock:
            hub = self.hubs.get(channel)
            if hub is None:
                hub = ChannelHub(self.store, channel, self._remove)
                await hub.start()
                self.hubs[channel] = hub
            client = Client()
            hub.clients.add(client)
            metrics.SSE_CLIENTS.inc()
            return client

    def unsubscribe(self, channel: str, client: Client) -> None:
        """Synchronous on purpose: it runs in the stream's ``finally`` while the request is being
        cancelled, where any ``await`` (e.g. a contended lock) would be interrupted and leak the client."""
        hub = self.hubs.get(channel)
        if hub is not None:
            self._remove(hub, client)

    @asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[Client]:
        """A client of ``channel`` for the duration of the ``async with`` (e.g. a request's exit stack)."""
        client = await self.subscribe(channel)
        try:
            yield client
        finally:
            self.unsubscribe(channel, client)

    def _remove(self, hub: ChannelHub, client: Client) -> None:
        """Forget ``client`` (unsubscribed, or dropped by the hub) at once: count it out exactly once."""
        if client not in hub.clients:
            return
        hub.clients.discard(client)
        metrics.SSE_CLIENTS.dec()
        if not hub.clients and self.hubs.get(hub.channel) is hub:
            task = asyncio.get_running_loop().create_task(self._stop_if_idle(hub.channel))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _stop_if_idle(self, channel: str) -> None:
        async with self.lock:
            hub = self.hubs.get(channel)
            if hub is not None and not hub.clients:  # nobody subscribed again meanwhile
                del self.hubs[channel]
                await hub.stop()

    def client_count(self, channel: str | None = None) -> int:
        if channel is not None:
            hub = self.hubs.get(channel)
            return len(hub.clients) if hub else 0
        return sum(len(h.clients) for h in self.hubs.values())

    def close_all(self) -> None:
        """Tell every client stream to end (shutdown); safe to call from a signal handler's loop callback."""
        self.closed = True
        for hub in self.hubs.values():
            for client in list(hub.clients):
                client.close()

    async def stop(self) -> None:
        self.close_all()
        async with self.lock:
            hubs = list(self.hubs.values())
            self.hubs.clear()  # from here on, unsubscribe() finds nothing: no double count
        for hub in hubs:
            metrics.SSE_CLIENTS.dec(len(hub.clients))
            await hub.stop()


def newer(a: str, b: str) -> bool:
    """Stream id ``a`` > ``b``."""
    return bool(parse_id(a) > parse_id(b))


def valid_last_event_id(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parse_id(value.strip())
    except ValueError:
        return None
    return value.strip()


async def client_stream(
    hubs: Hubs, channel: str, client: Client, last_event_id: str | None, ping_s: float
) -> AsyncIterator[Message | str]:
    """Messages for one subscribed ``client``: snapshot, replay since ``last_event_id``, then live.

    Yields ``"ping"`` when idle for ``ping_s``. Ends when the hub drops the
    client or the app shuts down; unsubscribes when it ends (the owner of the
    subscription unsubscribes too, even if this generator is abandoned).
    """
    store = hubs.store
    try:
        snap = await store.snapshot(channel)
        health = health_out(await store.health(channel))
        first = stream_message(channel, snap, None, health)
        if last_event_id is not None and newer(last_event_id, await store.last_stream_id(channel)):
            # an id from the future: Redis was wiped or the prefix changed under an open overlay.
            # Start afresh, or every new event would look "already seen".
            last_event_id = None
        if last_event_id is None:
            last_sent = first.id or await store.last_stream_id(channel)
            yield first
        else:
            last_sent = last_event_id
            yield Message(None, first.data)
        while True:  # replay what the client has not seen yet
            events = await store.events_after(channel, last_sent, REPLAY_CHUNK)
            for event in events:
                yield stream_message(channel, snap, event, health)
                last_sent = event.id
            if len(events) < REPLAY_CHUNK:
                break
        while not hubs.closed:
            try:
                async with asyncio.timeout(ping_s):  # unlike wait_for, no extra task per message
                    message = await client.queue.get()
            except TimeoutError:
                yield "ping"
                continue
            if message is None:
                return
            if message.id is not None and not newer(message.id, last_sent):
                continue
            if message.id is not None:
                last_sent = message.id
            yield message
    finally:
        hubs.unsubscribe(channel, client)
