"""Named overlay presets (``/overlay?preset=NAME``): list, read, save, delete.

Reads are open like every read (the overlay in OBS has no token); PUT and
DELETE are mutations, guarded like the commands (same origin, JSON, the admin
token when one is set: ``security.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi import Path as PathParam

from services.gateway.deps import RuntimeDep
from services.gateway.errors import error_responses, guarded_responses
from services.gateway.presets import MAX_PRESETS, PRESET_NAME_PATTERN, PresetIn, PresetOut, PresetsOut, PresetStore

router = APIRouter(prefix="/api/v1/overlay/presets", tags=["overlay presets"])


def get_presets(runtime: RuntimeDep) -> PresetStore:
    return PresetStore(runtime.store.r, runtime.store.keys)


PresetsDep = Annotated[PresetStore, Depends(get_presets)]
NameParam = Annotated[
    str,
    PathParam(
        pattern=PRESET_NAME_PATTERN, max_length=32,
        description="1-32 lower-case letters, digits and '-', starting with a letter or digit.",
        examples=["stream-main"],
    ),
]

NOT_FOUND = {404: "No preset of that name."}
INVALID = {422: "Invalid name or parameters; nothing was changed."}


def _unknown(name: str) -> HTTPException:
    return HTTPException(404, f"no overlay preset {name!r}: see GET /api/v1/overlay/presets")


@router.get("", response_model=PresetsOut, summary="List the overlay presets")
async def list_presets(presets: PresetsDep) -> PresetsOut:
    return PresetsOut(presets=await presets.all())


@router.get(
    "/{name}", response_model=PresetOut, responses=error_responses(NOT_FOUND), summary="One overlay preset",
    description="What `/overlay?preset={name}` applies (parameters in its URL win over these).",
)
async def get_preset(name: NameParam, presets: PresetsDep) -> PresetOut:
    found = await presets.get(name)
    if found is None:
        raise _unknown(name)
    return found


@router.put(
    "/{name}", response_model=PresetOut,
    responses=guarded_responses({**INVALID, 409: f"Already {MAX_PRESETS} presets."}),
    summary="Save an overlay preset (create or replace)",
    description="Only the overlay's known parameters, each within the range the overlay accepts; anything "
    "else is a 422 and changes nothing. Open it with `/overlay?preset={name}` (add `&channel=…` for another "
    "channel).",
)
async def put_preset(name: NameParam, body: PresetIn, presets: PresetsDep) -> PresetOut:
    saved = await presets.put(name, body.params)
    if saved is None:
        raise HTTPException(409, f"there are already {MAX_PRESETS} overlay presets: delete one first")
    return saved


@router.delete(
    "/{name}", status_code=204, response_class=Response, responses=guarded_responses({**INVALID, **NOT_FOUND}),
    summary="Delete an overlay preset",
    description="No body and no content type needed (a body, if sent, must be JSON like every change's).",
)
async def delete_preset(name: NameParam, presets: PresetsDep) -> Response:
    if not await presets.delete(name):
        raise _unknown(name)
    return Response(status_code=204)
