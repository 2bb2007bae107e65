"""Readings into Kafka: range checks, duplicate detection, dead letters, status events.

Every valid reading is published to ``telemetry.readings.v1`` (out-of-order ones too: they
belong in the history; the projection does not apply them over newer state). Exact repeats are
dropped here and carry a deterministic event id (UUID5 of site, device, device time and
values), so a repeat published by another gateway instance is deduplicated downstream.
Invalid input goes to ``telemetry.readings.v1.dlq`` with the reason and the original bytes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from domain.telemetry.state import Tracker, Verdict
from domain.telemetry.validation import Limits
from infra.kafka_io import dead_letter, publish
from infra.logging import get_logger
from infra.metrics import DEAD_LETTERS, PUBLISHED
from schemas.base import Payload
from schemas.catalog import DEVICE_STATUS, TELEMETRY_READINGS
from schemas.envelope import new_envelope
from schemas.telemetry import TelemetryReceived

log = get_logger("gateways.telemetry")
NAMESPACE = uuid.UUID("3d0f6a52-7f64-4c59-93a8-5c7e8e0b7f21")


def reading_event_id(r: TelemetryReceived) -> uuid.UUID:
    values = ",".join(f"{k}={v!r}" for k, v in sorted(r.quantities().items()))
    return uuid.uuid5(NAMESPACE, f"{r.site}|{r.device_id}|{r.device_time.isoformat()}|{values}")


class TelemetryPublisher:
    """One per gateway process; `name` is the envelope source, e.g. ``gateway.modbus``."""

    def __init__(self, producer: AIOKafkaProducer, name: str, limits: Limits | None = None,
                 max_pending: int = 5000):
        self.producer = producer
        self.name = name
        self.limits = limits or Limits()
        self.tracker = Tracker()
        self.counts: Counter[str] = Counter()
        self._pending: list[asyncio.Future[Any]] = []
        self._max_pending = max_pending
        self._rejected = 0

    async def reading(self, reading: TelemetryReceived, *, origin: str | None = None,
                      raw: bytes | None = None) -> Verdict | str:
        """Validate, classify and publish one reading; returns the verdict or ``rejected``.
        `origin` and `raw` (the input as received) go to the dead letter of a rejection."""
        quantities = reading.quantities()
        problems = self.limits.problems(quantities)
        if problems:
            await self.reject(origin or f"{reading.source}:{reading.site}/{reading.device_id}",
                              raw if raw is not None else reading.model_dump_json().encode(),
                              "; ".join(problems))
            return "rejected"
        verdict = self.tracker.observe(reading, quantities)
        self.counts[verdict] += 1
        if verdict == "duplicate":
            return verdict
        envelope = new_envelope(reading, occurred_at=reading.device_time, source=self.name,
                                event_id=reading_event_id(reading))
        await self._send(TELEMETRY_READINGS.name, envelope)
        return verdict

    async def status(self, payload: Payload, occurred_at: datetime | None = None) -> None:
        """A DeviceOffline/DeviceOnline/SetpointDelivered to the device-status topic."""
        envelope = new_envelope(payload, occurred_at=occurred_at or datetime.now(UTC),
                                source=self.name)
        await self._send(DEVICE_STATUS.name, envelope)
        log.info(payload.event_type, **payload.model_dump(mode="json"))

    async def reject(self, origin: str, raw: bytes, reason: str) -> None:
        """Dead-letter input that is not a valid reading; `origin` names where it came from
        (``mqtt:<topic>``, ``modbus:<host>:<port>``, ``rest``)."""
        self._rejected += 1
        self.counts["rejected"] += 1
        letter = dead_letter(topic=origin, partition=0, offset=self._rejected, key=None,
                             value=raw, error=reason, processor=self.name)
        await self._send(TELEMETRY_READINGS.dlq, letter)
        DEAD_LETTERS.labels(self.name, TELEMETRY_READINGS.name).inc()
        log.warning("telemetry rejected", origin=origin, reason=reason)

    async def _send(self, topic: str, envelope: Any) -> None:
        self._pending.append(await publish(self.producer, topic, envelope))
        PUBLISHED.labels(self.name, topic).inc()
        if len(self._pending) >= self._max_pending:
            await self.flush()

    async def flush(self) -> None:
        """Wait until everything sent so far is acknowledged by the broker."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            log.error("telemetry publish failed", errors=len(errors), error=str(errors[0]))
            if isinstance(errors[0], KafkaError):
                raise errors[0]

    async def flush_every(self, interval_s: float = 0.2) -> None:
        """Background task: acknowledge pending sends regularly (bounded loss window)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()
