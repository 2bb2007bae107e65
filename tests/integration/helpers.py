"""Helpers for integration tests: publish envelopes, read a topic to a condition."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from gateways.market_data.price_file import read_price_csv
from gateways.market_data.service import publish_ticks
from infra.kafka_io import make_producer, partitions_of
from infra.settings import PROJECT_ROOT
from projections.framework import ProjectionRunner
from projections.market import MarketProjection
from schemas.envelope import decode
from schemas.market import PriceTickReceived

CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"


def renamed(ticks: Iterable[PriceTickReceived], market: str) -> list[PriceTickReceived]:
    return [t.model_copy(update={"market": market}) for t in ticks]


def real_ticks(market: str, start: datetime, end: datetime) -> list[PriceTickReceived]:
    """The shipped real AT prices of [start, end) under a test-only market id."""
    return renamed(read_price_csv(CSV, start=start, end=end), market)


async def publish(bootstrap: str, ticks: list[PriceTickReceived]) -> int:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        return await publish_ticks(producer, ticks, source="test")
    finally:
        await producer.stop()


async def project_market(dsn: str, bootstrap: str) -> int:
    """Run the market projection up to the current end of its topics."""
    return await ProjectionRunner(MarketProjection(), dsn, bootstrap).run_to_end()


async def produce_raw(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_until(bootstrap: str, topic: str, done: Callable[[list[Any]], bool],
                     timeout_s: float = 60.0, decode_values: bool = True) -> list[Any]:
    """Read `topic` from the beginning (read_committed) until `done(messages)` or timeout.

    Returns decoded envelopes (or raw records when `decode_values` is False).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    out: list[Any] = []
    try:
        parts = await partitions_of(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for r in records:
                    out.append(decode(r.value) if decode_values else r)
            if done(out):
                return out
            await asyncio.sleep(0)
        return out
    finally:
        await consumer.stop()


def _spawn_api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "infra.cli", "api"], env=env,
                                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


async def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run `bess api` as a subprocess with `env` (BESS_API_PORT set) and wait for /health."""
    proc = _spawn_api(env, log)
    base = f"http://127.0.0.1:{env['BESS_API_PORT']}"
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            try:
                if (await client.get(f"{base}/health", timeout=1)).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
    return proc, base
