"""The channel's current mode: a command for the state service, like the other mutations."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.deps import ChannelDep, RuntimeDep
from services.gateway.models import CommandOut
from services.gateway.modes import ModeIn
from services.gateway.routers.commands import ERRORS
from services.gateway.views import channel_status

router = APIRouter(prefix="/api/v1/channels/{ch}", tags=["commands"])


@router.post(
    "/mode", response_model=CommandOut, responses=ERRORS,
    summary="Set the current mode (matches from now on count in it; new sessions keep it)",
    description="Setting the mode the channel is already in changes nothing: the answer is 200 with `event_id` "
    "`\"\"`. The status's `by_mode` holds the current session's counts per mode.",
)
async def set_mode(ch: ChannelDep, body: ModeIn, runtime: RuntimeDep) -> CommandOut:
    reply = await runtime.state_client.send(ch, "mode", mode=body.mode, note=body.note)
    return CommandOut(event_id=reply.event_id, status=channel_status(ch, await runtime.store.channel_state(ch)))
