"""Read endpoints of a channel: status, history, export, sessions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from services.common.contracts.export import to_csv, to_jsonl
from services.common.contracts.streamids import parse_id
from services.gateway.deps import ChannelDep, StoreDep
from services.gateway.errors import error_responses
from services.gateway.models import ChannelsOut, HistoryOut, SessionsOut, Status
from services.gateway.views import channel_status, event_out, session_out

router = APIRouter(prefix="/api/v1", tags=["channels"])
NOT_FOUND = error_responses({404: "Unknown channel."})


@router.get("/channels", response_model=ChannelsOut, summary="Known channels")
async def list_channels(store: StoreDep) -> ChannelsOut:
    return ChannelsOut(channels=await store.channels())


@router.get(
    "/channels/{ch}/status", response_model=Status, responses=NOT_FOUND, summary="Counts, streak, phase, health"
)
async def status(ch: ChannelDep, store: StoreDep) -> Status:
    return channel_status(ch, await store.channel_state(ch))


@router.get("/channels/{ch}/history", response_model=HistoryOut, responses=NOT_FOUND, summary="Event log, newest first")
async def history(
    ch: ChannelDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Events per page.")] = 50,
    before: Annotated[str | None, Query(description="Only events older than this event id.", max_length=64)] = None,
) -> HistoryOut:
    if before is not None:
        try:
            if parse_id(before) == (0, 0):
                raise ValueError(f"nothing is older than {before!r}: the first event id is above 0-0")
        except ValueError as exc:
            raise HTTPException(422, f"query parameter 'before': {exc}") from None
    events = await store.history(ch, limit, before)
    next_before = events[-1].id if len(events) == limit else None
    return HistoryOut(channel=ch, events=[event_out(e) for e in events], next_before=next_before)


@router.get(
    "/channels/{ch}/export",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    summary="The whole event log as CSV or JSON Lines",
)
async def export(
    ch: ChannelDep,
    store: StoreDep,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl.")] = "csv",
    session: Annotated[str | None, Query(description="Only this session's events.", max_length=128)] = None,
) -> Response:
    events = [e async for e in store.iter_events(ch) if session is None or e.session == session]
    text = to_csv(events) if format == "csv" else to_jsonl(events)

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"owc-{ch}{'-' + session if session else ''}.{format}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Response(text, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}"'})


@router.get("/channels/{ch}/sessions", response_model=SessionsOut, responses=NOT_FOUND, summary="Sessions with totals")
async def sessions(ch: ChannelDep, store: StoreDep) -> SessionsOut:
    return SessionsOut(channel=ch, sessions=[session_out(s) for s in await store.sessions(ch)])
