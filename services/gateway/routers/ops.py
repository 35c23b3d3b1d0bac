"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.exceptions import RedisError

from services.gateway.deps import StoreDep
from services.gateway.models import ErrorOut, HealthzOut, ReadyzOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthzOut, summary="The process is up")
async def healthz() -> HealthzOut:
    return HealthzOut()


@router.get(
    "/readyz",
    response_model=ReadyzOut,
    responses={503: {"model": ErrorOut, "description": "Redis is not reachable."}},
    summary="Redis is reachable",
)
async def readyz(store: StoreDep) -> ReadyzOut:
    try:
        info = await store.r.info("server")
    except (RedisError, OSError) as exc:
        raise HTTPException(503, f"Redis is not reachable ({type(exc).__name__})") from None
    return ReadyzOut(redis=str(info.get("redis_version", "?")))


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
