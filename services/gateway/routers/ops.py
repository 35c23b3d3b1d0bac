"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.exceptions import RedisError

from services.gateway.deps import StoreDep
from services.gateway.errors import redis_problem
from services.gateway.models import ErrorOut, HealthzOut, ReadyzOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthzOut, summary="The process is up")
async def healthz() -> HealthzOut:
    return HealthzOut()


@router.get(
    "/readyz",
    response_model=ReadyzOut,
    responses={503: {"model": ErrorOut, "description": "Redis is not reachable, or it cannot write (disk full)."}},
    summary="Redis is reachable and can write",
)
async def readyz(store: StoreDep) -> ReadyzOut:
    try:
        redis = await store.redis_condition()
    except (RedisError, OSError) as exc:
        raise HTTPException(503, redis_problem(exc)[0]) from None
    if redis.write_problem is not None:
        # Redis answers but refuses every write (MISCONF) until its save works again
        raise HTTPException(503, f"Redis cannot write: {redis.write_problem}; counting is paused, nothing is lost")
    return ReadyzOut(redis=redis.version)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
