"""Server-sent events: the live status of a channel."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from redis.exceptions import RedisError

from services.gateway.deps import ChannelDep, DefaultChannelDep, RuntimeDep
from services.gateway.hub import Client, client_stream, valid_last_event_id
from services.gateway.models import ErrorOut

log = logging.getLogger("owc.gateway.sse")
router = APIRouter(tags=["events"])
RETRY_MS = 1000

LastEventIdHeader = Annotated[
    str | None, Header(alias="Last-Event-ID", description="Resume after this event id (browsers send it).")
]
LastEventIdQuery = Annotated[
    str | None,
    Query(alias="lastEventId", max_length=64, description="Same as the header, for clients that cannot set it."),
]


async def channel_subscription(ch: ChannelDep, runtime: RuntimeDep) -> AsyncIterator[Client]:
    """The SSE client of this request, unsubscribed by the request's exit stack when the response ends
    (a dependency with ``yield``): not left to the garbage collector when a stalled stream is abandoned."""
    async with runtime.hubs.subscription(ch) as client:
        yield client


async def default_subscription(ch: DefaultChannelDep, runtime: RuntimeDep) -> AsyncIterator[Client]:
    async with runtime.hubs.subscription(ch) as client:
        yield client


async def _stream(
    runtime: RuntimeDep, ch: str, client: Client, header: str | None, query: str | None
) -> AsyncIterator[ServerSentEvent]:
    resume = valid_last_event_id(header) or valid_last_event_id(query)
    first = True
    try:
        async for item in client_stream(runtime.hubs, ch, client, resume, runtime.settings.gateway.sse_ping_s):
            if isinstance(item, str):
                yield ServerSentEvent(comment=item)
                continue
            yield ServerSentEvent(raw_data=item.data, id=item.id, retry=RETRY_MS if first else None)
            first = False
    except (RedisError, OSError) as exc:
        # end the stream; the browser reconnects (after `retry`) and resumes from its last id
        log.warning("SSE stream of channel %s ended: Redis is not reachable (%s)", ch, exc)


@router.get(
    "/api/v1/channels/{ch}/events",
    response_class=EventSourceResponse,
    responses={404: {"model": ErrorOut, "description": "Unknown channel."}},
    summary="Live status (SSE): a snapshot on connect, then one message per event-log entry",
)
async def channel_events(
    ch: ChannelDep,
    runtime: RuntimeDep,
    client: Annotated[Client, Depends(channel_subscription)],
    last_event_id: LastEventIdHeader = None,
    last_event_id_q: LastEventIdQuery = None,
) -> AsyncIterator[ServerSentEvent]:
    async for sse in _stream(runtime, ch, client, last_event_id, last_event_id_q):
        yield sse


@router.get("/events", response_class=EventSourceResponse, summary="Prototype alias: SSE of the default channel")
async def legacy_events(
    ch: DefaultChannelDep,
    runtime: RuntimeDep,
    client: Annotated[Client, Depends(default_subscription)],
    last_event_id: LastEventIdHeader = None,
    last_event_id_q: LastEventIdQuery = None,
) -> AsyncIterator[ServerSentEvent]:
    async for sse in _stream(runtime, ch, client, last_event_id, last_event_id_q):
        yield sse
