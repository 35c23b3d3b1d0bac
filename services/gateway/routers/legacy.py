"""The earlier prototype's paths, kept for existing overlays and scripts (default channel)."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.contracts.messages import Counts
from services.gateway import views
from services.gateway.deps import DefaultChannelDep, RuntimeDep, StoreDep
from services.gateway.models import LegacyAdjustIn, LegacyInitializeIn, LegacyStatus
from services.gateway.routers.commands import ERRORS
from services.gateway.store import GatewayStore

router = APIRouter(prefix="/api", tags=["prototype aliases"])


async def _legacy(store: GatewayStore, ch: str) -> LegacyStatus:
    return views.legacy_status(views.channel_status(ch, await store.channel_state(ch)))


@router.get("/status", response_model=LegacyStatus, summary="Counts of the default channel (prototype shape)")
async def legacy_status(ch: DefaultChannelDep, store: StoreDep) -> LegacyStatus:
    return await _legacy(store, ch)


@router.post("/adjust", response_model=LegacyStatus, responses=ERRORS, summary="Prototype: {outcome|value, delta}")
async def legacy_adjust(ch: DefaultChannelDep, body: LegacyAdjustIn, runtime: RuntimeDep) -> LegacyStatus:
    await runtime.state_client.send(ch, "adjust", outcome=body.outcome, delta=body.delta)
    return await _legacy(runtime.store, ch)


@router.post("/initialize", response_model=LegacyStatus, responses=ERRORS, summary="Prototype: set the three counts")
async def legacy_initialize(ch: DefaultChannelDep, body: LegacyInitializeIn, runtime: RuntimeDep) -> LegacyStatus:
    await runtime.state_client.send(ch, "set", counts=Counts(body.victories, body.defeats, body.draws))
    return await _legacy(runtime.store, ch)
