"""Liveness/readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import PoolDep, SettingsDep
from infra.metrics import render

router = APIRouter(tags=["health"])


async def _kafka_ok(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
        writer.close()
        return True
    except (OSError, TimeoutError, ValueError):
        return False


@router.get("/health")
async def health(pool: PoolDep, settings: SettingsDep) -> JSONResponse:
    """Status of Postgres and the Kafka bootstrap server; 503 when one is down."""
    try:
        await pool.fetchval("SELECT 1")
        pg = True
    except Exception:  # deliberately broad: any failure means "not healthy", reported below
        pg = False
    kafka = await _kafka_ok(settings.bootstrap)
    ok = pg and kafka
    return JSONResponse({"status": "ok" if ok else "degraded", "postgres": pg, "kafka": kafka},
                        status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition format."""
    body, content_type = render()
    return Response(body, media_type=content_type)
