"""Readings into Kafka: range checks, duplicate detection, dead letters, status events.

Every valid reading is published to ``telemetry.readings.v1`` (out-of-order ones too: they
belong in the history; the projection does not apply them over newer state). Exact repeats are
dropped here and carry a deterministic event id (UUID5 of site, device, device time and
values), so a repeat published by another gateway instance is deduplicated downstream.
Invalid input goes to ``telemetry.readings.v1.dlq`` with the reason and the original bytes.

Two ways in: `reading()` publishes one reading (Modbus polls, a few per second); `submit()`
only validates, classifies and encodes, and `drain()` hands everything submitted to the
producer, one record batch per partition (`create_batch`/`send_batch`): the MQTT gateway
submits every message of a received batch and drains once. The bytes are those of
`schemas.envelope.encode` (see `gateways.telemetry.encoding`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from domain.telemetry.state import Tracker, Verdict
from domain.telemetry.validation import Limits
from gateways.telemetry.encoding import (
    HEADERS,
    encode_reading,
    reading_event_id,
    reading_event_id_str,
)
from infra.kafka_io import dead_letter, publish
from infra.logging import get_logger
from infra.metrics import DEAD_LETTERS, PUBLISHED
from schemas.base import Payload
from schemas.catalog import DEVICE_STATUS, TELEMETRY_READINGS
from schemas.envelope import Envelope, new_envelope
from schemas.telemetry import TelemetryReceived

__all__ = ["TelemetryPublisher", "reading_event_id"]

log = get_logger("gateways.telemetry")
READINGS = TELEMETRY_READINGS.name
SMALL_DRAIN = 16
"""Fewer records than this for a partition go through `producer.send` (which lingers and
batches them with others); more are built into one batch of their own."""


class TelemetryPublisher:
    """One per gateway process; `name` is the envelope source, e.g. ``gateway.modbus``."""

    def __init__(self, producer: AIOKafkaProducer, name: str, limits: Limits | None = None,
                 max_pending: int = 5000):
        self.producer = producer
        self.name = name
        self.limits = limits or Limits()
        self.tracker = Tracker()
        self.counts: Counter[str] = Counter()
        self._records: list[tuple[bytes, bytes]] = []  # (key, value) of telemetry.readings.v1
        self._letters: list[Envelope[Any]] = []
        self._pending: deque[tuple[asyncio.Future[Any], int]] = deque()  # (delivery, records)
        self._unacked = 0
        self._max_pending = max_pending
        self._rejected = 0
        self._partitions: list[int] | None = None
        self._partition_of: dict[bytes, int] = {}
        self._published = PUBLISHED.labels(name, READINGS)
        self._draining = asyncio.Lock()

    # --- readings ---

    def submit(self, reading: TelemetryReceived, *, origin: str | None = None,
               raw: bytes | None = None) -> Verdict | str:
        """Validate, classify and encode one reading for the next `drain()`; returns the
        verdict or ``rejected`` (then a dead letter with `origin` and `raw`, the input as
        received, is queued)."""
        quantities = reading.quantities()
        problems = self.limits.problems(quantities)
        if problems:
            self._dead_letter(origin or f"{reading.source}:{reading.site}/{reading.device_id}",
                              raw if raw is not None else reading.model_dump_json().encode(),
                              "; ".join(problems))
            return "rejected"
        verdict = self.tracker.observe(reading, quantities)
        self.counts[verdict] += 1
        if verdict == "duplicate":
            return verdict
        value = encode_reading(reading, self.name, reading_event_id_str(reading, quantities))
        self._records.append((reading.site.encode(), value))
        return verdict

    async def reading(self, reading: TelemetryReceived, *, origin: str | None = None,
                      raw: bytes | None = None) -> Verdict | str:
        """`submit` and `drain`: publish one reading; returns the verdict or ``rejected``."""
        verdict = self.submit(reading, origin=origin, raw=raw)
        await self.drain()
        return verdict

    async def drain(self) -> None:
        """Hand everything submitted to the producer (not waiting for the broker: `flush`).
        One drain at a time, so records of a partition keep their order."""
        async with self._draining:
            await self._drain()
        if self._unacked > self._max_pending:
            await self._acknowledged(self._max_pending // 2)

    async def _drain(self) -> None:
        if self._records:
            records, self._records = self._records, []
            if self._partitions is None:
                self._partitions = sorted(await self.producer.partitions_for(READINGS))
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for key, value in records:
                p = self._partition_of.get(key)
                if p is None:
                    p = self._partition_of[key] = DefaultPartitioner()(
                        key, self._partitions, self._partitions)
                by_partition.setdefault(p, []).append((key, value))
            for p, part in by_partition.items():
                if len(part) < SMALL_DRAIN:
                    for key, value in part:
                        self._track(await self.producer.send(
                            READINGS, value, key=key, partition=p, headers=HEADERS), 1)
                else:
                    await self._send_batches(p, part)
            self._published.inc(len(records))
        if self._letters:
            letters, self._letters = self._letters, []
            for letter in letters:
                await self._send(TELEMETRY_READINGS.dlq, letter)

    async def _send_batches(self, partition: int, records: list[tuple[bytes, bytes]]) -> None:
        batch = self.producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:
                batch.close()
                self._track(await self.producer.send_batch(batch, READINGS,
                                                           partition=partition),
                            batch.record_count())
                batch = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=HEADERS)
        batch.close()  # a closed batch goes out without lingering
        self._track(await self.producer.send_batch(batch, READINGS, partition=partition),
                    batch.record_count())

    # --- status and dead letters ---

    async def status(self, payload: Payload, occurred_at: datetime | None = None) -> None:
        """A DeviceOffline/DeviceOnline/SetpointDelivered to the device-status topic."""
        await self.event(DEVICE_STATUS.name, payload, occurred_at)

    async def event(self, topic: str, payload: Payload,
                    occurred_at: datetime | None = None) -> None:
        """Publish one event (logged: payloads sent this way carry no secrets)."""
        envelope = new_envelope(payload, occurred_at=occurred_at or datetime.now(UTC),
                                source=self.name)
        await self._send(topic, envelope)
        log.info(payload.event_type, **payload.model_dump(mode="json"))

    def _dead_letter(self, origin: str, raw: bytes, reason: str) -> None:
        self._rejected += 1
        self.counts["rejected"] += 1
        self._letters.append(dead_letter(topic=origin, partition=0, offset=self._rejected,
                                         key=None, value=raw, error=reason, processor=self.name))
        DEAD_LETTERS.labels(self.name, READINGS).inc()
        log.warning("telemetry rejected", origin=origin, reason=reason)

    def submit_rejection(self, origin: str, raw: bytes, reason: str) -> None:
        """Queue a dead letter for input that is not a valid reading (sent by `drain`);
        `origin` names where it came from (``mqtt:<topic>``, ``modbus:<host>:<port>``)."""
        self._dead_letter(origin, raw, reason)

    async def reject(self, origin: str, raw: bytes, reason: str) -> None:
        """Dead-letter input that is not a valid reading, now."""
        self._dead_letter(origin, raw, reason)
        await self.drain()

    async def _send(self, topic: str, envelope: Envelope[Any]) -> None:
        self._track(await publish(self.producer, topic, envelope), 1)
        PUBLISHED.labels(self.name, topic).inc()

    def _track(self, delivery: asyncio.Future[Any], records: int) -> None:
        self._pending.append((delivery, records))
        self._unacked += records

    # --- acknowledgements ---

    async def flush(self) -> None:
        """Wait until everything submitted so far is acknowledged by the broker."""
        if self._records or self._letters:
            await self.drain()
        await self._acknowledged(0)

    async def _acknowledged(self, keep: int) -> None:
        """Wait for the oldest sends until at most `keep` records are unacknowledged. Several
        tasks may wait at once (the flush task, a full `drain`): each waits for the oldest
        delivery itself, so none returns before what it needs is acknowledged."""
        while self._pending and self._unacked > keep:
            delivery, records = self._pending[0]
            await asyncio.wait([delivery])  # not cancelling it when we are cancelled
            if self._pending and self._pending[0][0] is delivery:
                self._pending.popleft()
                self._unacked -= records
                error = None if delivery.cancelled() else delivery.exception()
                if error is not None:
                    log.error("telemetry publish failed", error=str(error), records=records)
                    if isinstance(error, KafkaError):
                        raise error

    async def flush_every(self, interval_s: float = 0.2) -> None:
        """Background task: acknowledge pending sends regularly (bounded loss window)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()
