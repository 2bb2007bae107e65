"""FastAPI dependencies: settings and the asyncpg pool (created in the app lifespan)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request

from infra.settings import Settings, get_settings


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool  # type: ignore[no-any-return]


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_producer(request: Request) -> AIOKafkaProducer:
    return request.app.state.producer  # type: ignore[no-any-return]


ProducerDep = Annotated[AIOKafkaProducer, Depends(get_producer)]
