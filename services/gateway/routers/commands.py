"""Mutations: each one is a command for the state service (the single writer), via :mod:`state_client`."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.contracts.messages import Counts
from services.gateway.deps import ChannelDep, RuntimeDep
from services.gateway.errors import guarded_responses
from services.gateway.models import AdjustIn, CommandOut, NewSessionIn, SetIn, UndoIn
from services.gateway.views import channel_status

router = APIRouter(prefix="/api/v1/channels/{ch}", tags=["commands"])

ERRORS = guarded_responses({
    404: "Unknown channel.",
    409: "The state service refused the command (e.g. nothing to undo).",
    422: "Invalid body.",
    503: "The state service did not answer in time; nothing was changed.",
})


async def _done(runtime: RuntimeDep, ch: str, event_id: str) -> CommandOut:
    return CommandOut(event_id=event_id, status=channel_status(ch, await runtime.store.channel_state(ch)))


@router.post("/adjust", response_model=CommandOut, responses=ERRORS, summary="Add or remove matches of one outcome")
async def adjust(ch: ChannelDep, body: AdjustIn, runtime: RuntimeDep) -> CommandOut:
    reply = await runtime.state_client.send(
        ch, "adjust", outcome=body.outcome, delta=body.delta, note=body.note, frame_seq=body.frame_seq
    )
    return await _done(runtime, ch, reply.event_id)


@router.post("/set", response_model=CommandOut, responses=ERRORS, summary="Set all three counts")
async def set_counts(ch: ChannelDep, body: SetIn, runtime: RuntimeDep) -> CommandOut:
    counts = Counts(body.victories, body.defeats, body.draws)
    reply = await runtime.state_client.send(ch, "set", counts=counts, note=body.note)
    return await _done(runtime, ch, reply.event_id)


@router.post("/undo", response_model=CommandOut, responses=ERRORS, summary="Revert the last change")
async def undo(ch: ChannelDep, body: UndoIn, runtime: RuntimeDep) -> CommandOut:
    reply = await runtime.state_client.send(ch, "undo", note=body.note)
    return await _done(runtime, ch, reply.event_id)


@router.post("/sessions", response_model=CommandOut, responses=ERRORS, summary="Start a new session (counts to 0)")
async def new_session(ch: ChannelDep, body: NewSessionIn, runtime: RuntimeDep) -> CommandOut:
    reply = await runtime.state_client.send(ch, "new_session", note=body.note)
    return await _done(runtime, ch, reply.event_id)
