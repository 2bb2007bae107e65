"""Modbus TCP gateway: polls every configured device on a common clock, publishes readings,
reports devices going offline and coming back, and writes setpoints. The devices come from
the environment and the command line, or from the latest `ConfigureModbusGateway` on
``telemetry.gateway-config.v1`` (applied at run time, see `ModbusGateway`).

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
from gateways.telemetry.config import follow_config
from gateways.telemetry.publisher import TelemetryPublisher
from gateways.telemetry.setpoints import consume_setpoints
from infra import modbus
from infra.kafka_io import make_producer
from infra.logging import get_logger
from infra.modbus import ModbusDevice, ModbusDeviceError, ModbusReader, load_profile
from infra.settings import Settings
from infra.tasks import run_until_first_error
from schemas.catalog import GATEWAY_CONFIG
from schemas.envelope import Envelope
from schemas.telemetry import (
    ConfigureModbusGateway,
    DeviceOffline,
    DeviceOnline,
    GatewayConfigApplied,
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


def _identity(device: ModbusDevice) -> tuple[Any, ...]:
    return tuple(device.model_dump().values())


class ModbusGateway:
    """The pollers of the configured devices; `apply_config` swaps the configuration at run
    time (only the pollers of changed devices restart) and reports `GatewayConfigApplied`."""

    def __init__(self, settings: Settings, devices: list[ModbusDevice],
                 publisher: TelemetryPublisher, instance: str = "bess-gateway-modbus",
                 on_poll: Callable[[ModbusDevice, float, float], None] | None = None):
        self.settings = self.own_settings = settings
        self.devices = self.own_devices = list(devices)
        self.publisher = publisher
        self.instance = instance
        self.on_poll = on_poll
        self.pollers: dict[tuple[Any, ...], tuple[DevicePoller, asyncio.Task[None]]] = {}
        self.config_event_id: str | None = None  # the command in effect (None: own config)
        self._failed: asyncio.Future[None] | None = None

    def sites(self) -> set[str]:
        """Sites with a device that takes setpoints."""
        return {p.device.site for p, _ in self.pollers.values()
                if p.reader.template.setpoint is not None}

    async def write_setpoint(self, envelope: Envelope[SetpointIssued]) -> None:
        for poller, _ in list(self.pollers.values()):
            if poller.device.site == envelope.payload.site and \
                    poller.reader.template.setpoint is not None:
                await self.publisher.status(await poller.write_setpoint(envelope))

    async def run(self) -> None:
        """Poll until cancelled (or until a poller fails unexpectedly: raised here)."""
        self._failed = asyncio.get_running_loop().create_future()
        self._reconcile(restart_all=False)
        log.info("modbus gateway started", enabled=self.settings.modbus_enabled,
                 devices=[d.model_dump() for d in self.devices])
        await self._report(self.config_event_id, ok=True, error=None)
        try:
            await self._failed
        finally:
            for key in list(self.pollers):
                self._stop(key)

    async def apply_config(self, envelope: Envelope[Any] | None) -> None:
        """A `ConfigureModbusGateway` (None: back to the gateway's own configuration). A
        configuration with an unknown profile is refused (reported, nothing changes)."""
        if envelope is None:
            settings, devices, event_id = self.own_settings, self.own_devices, None
        elif isinstance(envelope.payload, ConfigureModbusGateway):
            config = envelope.payload.config
            event_id = str(envelope.event_id)
            problems = modbus.config_problems(config, self.settings)
            if problems:
                await self._report(event_id, ok=False, error="; ".join(problems))
                return
            settings, devices = modbus.with_config(self.settings, config, self.own_devices)
        else:
            return
        restart_all = (settings.modbus_timeout_s, settings.modbus_offline_after) != \
            (self.settings.modbus_timeout_s, self.settings.modbus_offline_after)
        self.settings, self.devices, self.config_event_id = settings, devices, event_id
        if self._failed is not None:  # running: apply now (else `run` starts with it)
            self._reconcile(restart_all)
            log.info("modbus configuration changed", enabled=settings.modbus_enabled,
                     devices=[d.model_dump() for d in devices])
            await self._report(event_id, ok=True, error=None)

    def _reconcile(self, restart_all: bool) -> None:
        wanted = {_identity(d): d for d in self.devices} if self.settings.modbus_enabled else {}
        for key in list(self.pollers):
            if restart_all or key not in wanted:
                self._stop(key)
        for key, device in wanted.items():
            if key not in self.pollers:
                self._start(key, device)

    def _start(self, key: tuple[Any, ...], device: ModbusDevice) -> None:
        reader = ModbusReader(device.host, device.port, device.unit_id,
                              load_profile(device.profile, self.settings),
                              self.settings.modbus_timeout_s)
        poller = DevicePoller(device, reader, self.publisher, self.settings.modbus_offline_after,
                              self.on_poll)
        task = asyncio.create_task(poller.run())
        task.add_done_callback(self._check)
        self.pollers[key] = (poller, task)

    def _stop(self, key: tuple[Any, ...]) -> None:
        poller, task = self.pollers.pop(key)
        task.cancel()
        poller.reader.close()

    def _check(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._failed is None or self._failed.done():
            return
        if (exc := task.exception()) is not None:
            self._failed.set_exception(exc)

    async def _report(self, event_id: str | None, *, ok: bool, error: str | None) -> None:
        await self.publisher.event(GATEWAY_CONFIG.name, GatewayConfigApplied(
            gateway="modbus", instance=self.instance, config_event_id=event_id,
            applied_at=datetime.now(UTC), ok=ok, error=error,
            modbus=modbus.gateway_config(self.settings, self.devices)))


async def run_gateway(settings: Settings, devices: list[ModbusDevice],
                      ready: asyncio.Event | None = None,
                      on_poll: Callable[[ModbusDevice, float, float], None] | None = None,
                      instance: str = "bess-gateway-modbus") -> None:
    """Poll `devices` (or those of the configuration topic) and write setpoints until
    cancelled. `ready`: configured, polling and listening for setpoints."""
    producer = make_producer(settings.bootstrap, linger_ms=20)
    await producer.start()
    publisher = TelemetryPublisher(producer, "gateway.modbus")
    gateway = ModbusGateway(settings, devices, publisher, instance, on_poll)
    config_loaded, setpoints_ready = asyncio.Event(), asyncio.Event()

    async def _run() -> None:
        await config_loaded.wait()
        await gateway.run()

    async def _ready() -> None:
        await config_loaded.wait()
        await setpoints_ready.wait()
        if ready is not None:
            ready.set()

    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(follow_config(settings.bootstrap, "modbus", gateway.apply_config,
                                          config_loaded)),
        asyncio.create_task(_run()),
        asyncio.create_task(_ready()),
        asyncio.create_task(publisher.flush_every()),
        asyncio.create_task(consume_setpoints(
            settings.bootstrap, "modbus", settings.setpoint_via, gateway.sites,
            gateway.write_setpoint, setpoints_ready)),
    ]
    try:
        await run_until_first_error(tasks)
    finally:
        with contextlib.suppress(Exception):
            await publisher.flush()
        await producer.stop()
