"""Helpers for integration tests: publish envelopes, read a topic to a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer

from infra.kafka_io import make_producer, partitions_of
from schemas.envelope import decode
from schemas.market import PriceTickReceived


def renamed(ticks: Iterable[PriceTickReceived], market: str) -> list[PriceTickReceived]:
    return [t.model_copy(update={"market": market}) for t in ticks]


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
