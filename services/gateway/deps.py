"""FastAPI dependencies (used via ``Annotated``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam

from services.common.config.settings import Settings
from services.common.contracts.keys import DEFAULT_CHANNEL
from services.gateway.hub import Hubs
from services.gateway.state_client import StateClient
from services.gateway.store import GatewayStore


@dataclass
class Runtime:
    """What the app builds in its lifespan and the routes use."""

    settings: Settings
    config_dir: Path
    store: GatewayStore
    state_client: StateClient
    hubs: Hubs


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_store(runtime: RuntimeDep) -> GatewayStore:
    return runtime.store


StoreDep = Annotated[GatewayStore, Depends(get_store)]


async def known_channel(
    store: StoreDep,
    ch: Annotated[str, PathParam(description="Channel name (`default` always exists).", max_length=64)],
) -> str:
    if not await store.channel_exists(ch):
        raise HTTPException(404, f"unknown channel {ch!r}: see GET /api/v1/channels for the known ones")
    return ch


ChannelDep = Annotated[str, Depends(known_channel)]


def default_channel() -> str:
    return DEFAULT_CHANNEL


DefaultChannelDep = Annotated[str, Depends(default_channel)]
