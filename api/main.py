"""The FastAPI application: `create_app()` wires settings, the asyncpg pool and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from api.routes import ems, health, market, orders, telemetry
from infra.kafka_io import make_producer
from infra.settings import Settings, get_settings
from projections.framework import migrate
from projections.registry import projections


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(settings.dsn, min_size=1, max_size=10)
        app.state.producer = make_producer(settings.bootstrap)  # commands/events out
        await app.state.producer.start()
        async with app.state.pool.acquire() as conn:
            for projection in projections().values():
                await migrate(conn, projection)  # tables exist before the first query
        try:
            yield
        finally:
            await app.state.producer.stop()
            await app.state.pool.close()

    app = FastAPI(
        title="BESS trading and dispatch API",
        version="0.1.0",
        description="Query layer over the event-sourced read models. Commands are published "
                    "to Kafka, never written to tables directly.",
        lifespan=lifespan,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    app.include_router(health.router)
    app.include_router(market.router)
    app.include_router(telemetry.router)
    app.include_router(orders.router)
    app.include_router(ems.router)
    return app
