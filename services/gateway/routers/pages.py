"""The overlay and admin pages, the API docs, the user's custom.css, detection thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse, Response

from services.gateway.deps import ChannelDep, RuntimeDep, StoreDep
from services.gateway.models import DetectionOut, ErrorOut
from services.gateway.views import detection_out

STATIC = Path(__file__).resolve().parent.parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["pages"])


@router.get("/", response_class=RedirectResponse, status_code=307, summary="Redirects to the overlay")
async def root(request: Request) -> RedirectResponse:
    query = request.url.query
    return RedirectResponse("/overlay" + (f"?{query}" if query else ""), status_code=307)


@router.get("/overlay", response_class=FileResponse, summary="The OBS browser source")
async def overlay() -> FileResponse:
    return FileResponse(STATIC / "overlay.html", headers=NO_CACHE)


@router.get("/admin", response_class=FileResponse, summary="The admin page")
async def admin() -> FileResponse:
    return FileResponse(STATIC / "admin.html", headers={**NO_CACHE, "Referrer-Policy": "no-referrer"})


@router.get("/favicon.ico", response_class=FileResponse, include_in_schema=False)
async def favicon() -> FileResponse:
    """The tab icon (browsers ask for it by this path whatever the page says)."""
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})


@router.get("/docs", response_class=FileResponse, include_in_schema=False)
async def swagger_ui() -> FileResponse:
    return FileResponse(STATIC / "docs" / "swagger.html", headers=NO_CACHE)


@router.get("/redoc", response_class=FileResponse, include_in_schema=False)
async def redoc() -> FileResponse:
    return FileResponse(STATIC / "docs" / "redoc.html", headers=NO_CACHE)


@router.get(
    "/custom.css",
    response_class=Response,
    summary="The user's custom.css from the config directory",
    responses={200: {"content": {"text/css": {}}}},
)
async def custom_css(runtime: RuntimeDep) -> Response:
    path = runtime.config_dir / "custom.css"
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        data = b""
    return Response(data, media_type="text/css; charset=utf-8", headers=NO_CACHE)


@router.get(
    "/api/v1/channels/{ch}/detframe/{seq}.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorOut, "description": "No such frame."}},
    tags=["channels"],
    summary="The frame that triggered an automatic detection (kept for a few days)",
)
async def detframe(ch: ChannelDep, store: StoreDep, seq: Annotated[int, PathParam(ge=0)]) -> Response:
    data = await store.detframe(ch, seq)
    if data is None:
        raise HTTPException(404, f"no detection frame {seq} for channel {ch!r} (it may have expired)")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})


@router.get(
    "/api/v1/channels/{ch}/detections/{seq}",
    response_model=DetectionOut,
    responses={404: {"model": ErrorOut, "description": "No such frame."}},
    tags=["channels"],
    summary="What the detector saw on a kept frame: each stage's scores (kept as long as the frame)",
)
async def detection(ch: ChannelDep, store: StoreDep, seq: Annotated[int, PathParam(ge=0)]) -> DetectionOut:
    stored = await store.detection(ch, seq)
    info = detection_out(ch, seq, stored) if stored is not None else None
    if info is None:
        raise HTTPException(404, f"no detection details for frame {seq} of channel {ch!r} (they may have expired)")
    return info
