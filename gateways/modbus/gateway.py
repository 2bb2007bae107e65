"""Modbus TCP gateway: polls every configured device on a common clock, publishes readings,
reports devices going offline and coming back, and writes setpoints.

Polls are aligned to multiples of the interval on the wall clock, so many devices are read at
the same instants (low skew). A device that fails `BESS_MODBUS_OFFLINE_AFTER` polls in a row is
reported `DeviceOffline`; then the gateway retries with exponential backoff (up to 30 s) and
reports `DeviceOnline` on the first good read, after which polling continues on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from domain.telemetry.registers import ProfileError
from gateways.telemetry.publisher import TelemetryPublisher
from gateways.telemetry.setpoints import consume_setpoints
from infra.kafka_io import make_producer
from infra.logging import get_logger
from infra.modbus import ModbusDevice, ModbusDeviceError, ModbusReader, load_profile
from infra.settings import Settings
from infra.tasks import run_until_first_error
from schemas.envelope import Envelope
from schemas.telemetry import (
    DeviceOffline,
    DeviceOnline,
    SetpointDelivered,
    SetpointIssued,
    TelemetryReceived,
)

log = get_logger("gateways.modbus")
MAX_BACKOFF_S = 30.0


def next_tick(now: float, interval_s: float) -> float:
    """The next multiple of `interval_s` after `now` (wall-clock seconds)."""
    return (int(now / interval_s) + 1) * interval_s


class DevicePoller:
    """Polls one device; `on_poll(device, scheduled, started)` observes timing (bench)."""

    def __init__(self, device: ModbusDevice, reader: ModbusReader, publisher: TelemetryPublisher,
                 offline_after: int = 3,
                 on_poll: Callable[[ModbusDevice, float, float], None] | None = None):
        self.device = device
        self.reader = reader
        self.publisher = publisher
        self.offline_after = offline_after
        self.on_poll = on_poll
        self.online: bool | None = None
        self.failures = 0
        self.last_seen: datetime | None = None
        self.offline_since: datetime | None = None
        self.lock = asyncio.Lock()

    async def poll_once(self) -> bool:
        now = datetime.now(UTC)
        try:
            async with self.lock:
                snap = await self.reader.read()
        except (ModbusDeviceError, ProfileError) as exc:
            self.reader.close()
            await self._failed(str(exc), now)
            return False
        received = datetime.now(UTC)
        if self.online is not True:
            await self.publisher.status(DeviceOnline(
                site=self.device.site, device_id=self.device.device_id, source="modbus",
                detected_at=received, offline_since=self.offline_since))
            self.online, self.failures, self.offline_since = True, 0, None
        self.failures = 0
        self.last_seen = now
        if snap.quantities:
            await self.publisher.reading(TelemetryReceived(
                site=self.device.site, device_id=self.device.device_id, source="modbus",
                device_time=now, received_at=received, **snap.quantities))
        return True

    async def _failed(self, reason: str, now: datetime) -> None:
        self.failures += 1
        if self.failures >= self.offline_after and self.online is not False:
            self.online = False
            self.offline_since = now
            await self.publisher.status(DeviceOffline(
                site=self.device.site, device_id=self.device.device_id, source="modbus",
                detected_at=now, last_seen=self.last_seen, failures=self.failures,
                reason=reason))
        elif self.failures == 1:
            log.warning("modbus poll failed", device=self.device.device_id, error=reason)

    async def run(self) -> None:
        interval = self.device.interval_s
        while True:
            scheduled = next_tick(time.time(), interval)
            await asyncio.sleep(max(0.0, scheduled - time.time()))
            if self.on_poll is not None:
                self.on_poll(self.device, scheduled, time.time())
            if await self.poll_once():
                continue
            if self.online is False:
                backoff = min(MAX_BACKOFF_S, interval * 2 ** (self.failures - self.offline_after))
                await asyncio.sleep(max(0.0, backoff - interval))

    async def write_setpoint(self, envelope: Envelope[SetpointIssued]) -> SetpointDelivered:
        sp = envelope.payload
        error = None
        try:
            async with self.lock:
                await self.reader.write_setpoint(sp.active_power_mw)
        except (ModbusDeviceError, ProfileError) as exc:
            error = str(exc)
        return SetpointDelivered(site=sp.site, device_id=self.device.device_id, via="modbus",
                                 setpoint_event_id=str(envelope.event_id),
                                 active_power_mw=sp.active_power_mw,
                                 delivered_at=datetime.now(UTC), ok=error is None, error=error)


async def run_gateway(settings: Settings, devices: list[ModbusDevice],
                      ready: asyncio.Event | None = None,
                      on_poll: Callable[[ModbusDevice, float, float], None] | None = None,
                      ) -> None:
    """Poll `devices` and write setpoints until cancelled."""
    if not devices:
        raise ValueError("no Modbus devices configured (BESS_MODBUS_HOST or BESS_MODBUS_DEVICES)")
    producer = make_producer(settings.bootstrap, linger_ms=20)
    await producer.start()
    publisher = TelemetryPublisher(producer, "gateway.modbus")
    pollers = []
    for d in devices:
        reader = ModbusReader(d.host, d.port, d.unit_id, load_profile(d.profile, settings),
                              settings.modbus_timeout_s)
        pollers.append(DevicePoller(d, reader, publisher, settings.modbus_offline_after, on_poll))
    by_site: dict[str, list[DevicePoller]] = {}
    for p in pollers:
        if p.reader.template.setpoint is not None:
            by_site.setdefault(p.device.site, []).append(p)

    async def write(envelope: Envelope[SetpointIssued]) -> None:
        for poller in by_site.get(envelope.payload.site, []):
            delivered = await poller.write_setpoint(envelope)
            await publisher.status(delivered)

    log.info("modbus gateway started", devices=[d.model_dump() for d in devices])
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(p.run()) for p in pollers]
    tasks.append(asyncio.create_task(publisher.flush_every()))
    tasks.append(asyncio.create_task(consume_setpoints(
        settings.bootstrap, "modbus", settings.setpoint_via, by_site.keys, write, ready)))
    try:
        await run_until_first_error(tasks)
    finally:
        for p in pollers:
            p.reader.close()
        with contextlib.suppress(Exception):
            await publisher.flush()
        await producer.stop()
