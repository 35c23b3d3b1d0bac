"""The earlier prototype's paths, kept for existing overlays and scripts (default channel)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from services.common.messages import Counts
from services.gateway.deps import DefaultChannelDep, RuntimeDep, StoreDep
from services.gateway.models import LegacyAdjustIn, LegacyInitializeIn, LegacyStatus, Status
from services.gateway.routers.commands import ERRORS
from services.gateway.store import iso_ms

router = APIRouter(prefix="/api", tags=["prototype aliases"])


def legacy(status: Status) -> LegacyStatus:
    changed = status.last_event_at or (status.last_event.ts if status.last_event else None)
    return LegacyStatus(
        victories=status.victories,
        defeats=status.defeats,
        draws=status.draws,
        total=status.total,
        win_rate=status.win_rate,
        last_outcome=status.last_outcome,
        timestamp=iso_ms(changed)
        if changed
        else datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )


@router.get("/status", response_model=LegacyStatus, summary="Counts of the default channel (prototype shape)")
async def legacy_status(ch: DefaultChannelDep, store: StoreDep) -> LegacyStatus:
    return legacy(await store.status(ch))


@router.post("/adjust", response_model=LegacyStatus, responses=ERRORS, summary="Prototype: {outcome|value, delta}")
async def legacy_adjust(ch: DefaultChannelDep, body: LegacyAdjustIn, runtime: RuntimeDep) -> LegacyStatus:
    await runtime.commands.send(ch, "adjust", outcome=body.outcome, delta=body.delta)
    return legacy(await runtime.store.status(ch))


@router.post("/initialize", response_model=LegacyStatus, responses=ERRORS, summary="Prototype: set the three counts")
async def legacy_initialize(ch: DefaultChannelDep, body: LegacyInitializeIn, runtime: RuntimeDep) -> LegacyStatus:
    await runtime.commands.send(ch, "set", counts=Counts(body.victories, body.defeats, body.draws))
    return legacy(await runtime.store.status(ch))
