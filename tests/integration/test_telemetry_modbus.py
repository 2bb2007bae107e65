"""Modbus gateway against the device simulator's real pymodbus server, into real Kafka and the
telemetry projection in Postgres: exact converted values (predecessor map and SunSpec), a
device that goes away and comes back, a setpoint that reaches the battery and moves its SoC."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from domain.telemetry.battery import BatteryParams, BatteryState
from gateways.modbus.gateway import run_gateway
from gateways.simulator.device import SimulatedBattery
from infra.kafka_io import make_producer, publish
from infra.local.process import free_port
from infra.modbus import ModbusDevice, load_profile
from schemas.catalog import DEVICE_STATUS, SETPOINTS, TELEMETRY_READINGS
from schemas.envelope import new_envelope
from schemas.telemetry import DeviceOffline, DeviceOnline, SetpointDelivered, SetpointIssued
from tests.integration.helpers import read_until
from tests.integration.telemetry_helpers import eventually, project_telemetry, running

pytestmark = pytest.mark.integration


def _site() -> str:
    return f"mb-{uuid.uuid4().hex[:8]}"


def _of(site: str, events: list) -> list:
    return [e for e in events if getattr(e.payload, "site", None) == site]


@pytest.mark.parametrize("profile", ["default", "sunspec"])
async def test_readings_arrive_with_exact_values(services, pg, profile: str) -> None:
    site, port = _site(), free_port()
    sim = SimulatedBattery(site, "bess-1", load_profile(profile),
                           state=BatteryState(soc_pct=75.0, power_mw=2.5, temperature_c=28.3))
    await sim.start_modbus("127.0.0.1", port)
    device = ModbusDevice(site=site, device_id="bess-1", host="127.0.0.1", port=port,
                          profile=profile, interval_s=0.2)
    settings = services.settings()
    try:
        async with running(lambda ready: run_gateway(settings, [device], ready)):
            events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                      lambda m: len(_of(site, m)) >= 3, 30)
    finally:
        await sim.stop_modbus()
    readings = _of(site, events)
    first = readings[0].payload
    assert (first.source, first.device_id) == ("modbus", "bess-1")
    assert first.soc_pct == 75.0 and first.active_power_mw == 2.5 and first.temperature_c == 28.3
    if profile == "sunspec":
        assert first.frequency_hz == 50.0 and first.voltage_v == 400.0
    assert first.received_at >= first.device_time
    # 5 polls per second of unchanged registers: every poll is a reading of its own
    assert len({e.payload.device_time for e in readings}) == len(readings)
    status = await read_until(services.bootstrap, DEVICE_STATUS.name,
                              lambda m: any(isinstance(e.payload, DeviceOnline)
                                            for e in _of(site, m)), 20)
    assert [type(e.payload) for e in _of(site, status)] == [DeviceOnline]

    await project_telemetry(services.dsn, services.bootstrap)
    rows = {r["quantity"]: r["value"] for r in await pg.fetch(
        "SELECT quantity, value FROM telemetry.latest WHERE site = $1", site)}
    assert rows["soc_pct"] == 75.0 and rows["active_power_mw"] == 2.5
    assert rows["temperature_c"] == 28.3
    history = await pg.fetchval("SELECT count(*) FROM telemetry.readings WHERE site = $1", site)
    assert history >= len(readings)
    device_row = await pg.fetchrow("SELECT * FROM telemetry.devices WHERE site = $1", site)
    assert device_row["online"] is True and device_row["source"] == "modbus"


async def test_device_goes_away_and_comes_back(services, pg) -> None:
    site, port = _site(), free_port()
    profile = load_profile("default")
    sim = SimulatedBattery(site, "bess-1", profile, state=BatteryState(soc_pct=40.0))
    await sim.start_modbus("127.0.0.1", port)
    device = ModbusDevice(site=site, device_id="bess-1", host="127.0.0.1", port=port,
                          interval_s=0.2)
    settings = services.settings(modbus_offline_after=2, modbus_timeout_s=0.5)
    async with running(lambda ready: run_gateway(settings, [device], ready)):
        await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                         lambda m: len(_of(site, m)) >= 2, 30)
        await sim.stop_modbus()
        await read_until(services.bootstrap, DEVICE_STATUS.name,
                         lambda m: any(isinstance(e.payload, DeviceOffline)
                                       for e in _of(site, m)), 30)
        back = SimulatedBattery(site, "bess-1", profile, state=BatteryState(soc_pct=61.0))
        await back.start_modbus("127.0.0.1", port)
        try:
            await read_until(services.bootstrap, DEVICE_STATUS.name,
                             lambda m: any(isinstance(e.payload, DeviceOnline)
                                           and e.payload.offline_since for e in _of(site, m)), 60)
            for soc in (62.0, 63.0, 64.0):  # every value the device shows after its return
                await asyncio.sleep(0.6)
                back.state = replace(back.state, soc_pct=soc)
                await back.tick(0)
            events = await read_until(
                services.bootstrap, TELEMETRY_READINGS.name,
                lambda m: any(e.payload.soc_pct == 64.0 for e in _of(site, m)), 30)
        finally:
            await back.stop_modbus()
    socs = [e.payload.soc_pct for e in _of(site, events)]
    assert socs[0] == 40.0
    after = socs[socs.index(61.0):]
    assert {61.0, 62.0, 63.0, 64.0} <= set(after)
    assert after == sorted(after)
    status = [type(e.payload) for e in _of(site, await read_until(
        services.bootstrap, DEVICE_STATUS.name, lambda m: False, 3))]
    assert status == [DeviceOnline, DeviceOffline, DeviceOnline]
    offline = next(e.payload for e in _of(site, await read_until(
        services.bootstrap, DEVICE_STATUS.name, lambda m: False, 2))
        if isinstance(e.payload, DeviceOffline))
    assert offline.failures == 2 and offline.last_seen is not None
    await project_telemetry(services.dsn, services.bootstrap)
    row = await pg.fetchrow("SELECT * FROM telemetry.devices WHERE site = $1", site)
    assert row["online"] is True
    assert await pg.fetchval("SELECT value FROM telemetry.latest WHERE site = $1 "
                             "AND quantity = 'soc_pct'", site) == 64.0


async def test_setpoint_reaches_the_battery_and_moves_its_soc(services, pg) -> None:
    site, port = _site(), free_port()
    params = BatteryParams(capacity_mwh=0.05, max_charge_mw=2.0, max_discharge_mw=2.0)
    sim = SimulatedBattery(site, "bess-1", load_profile("default"), params,
                           BatteryState(soc_pct=50.0), tick_s=0.05)
    await sim.start_modbus("127.0.0.1", port)
    physics = asyncio.create_task(sim.run_physics())
    device = ModbusDevice(site=site, device_id="bess-1", host="127.0.0.1", port=port,
                          interval_s=0.2)
    settings = services.settings()
    producer = make_producer(services.bootstrap)
    await producer.start()
    try:
        async with running(lambda ready: run_gateway(settings, [device], ready)):
            sp = new_envelope(SetpointIssued(site=site, active_power_mw=-1.5,
                                             issued_at=datetime.now(UTC), issued_by="test"),
                              occurred_at=datetime.now(UTC), source="test")
            await (await publish(producer, SETPOINTS.name, sp))
            await eventually(lambda: sim.state.setpoint_mw == -1.5)
            await eventually(lambda: sim.state.soc_pct > 55.0)
            assert sim.state.power_mw == -1.5
            events = await read_until(
                services.bootstrap, TELEMETRY_READINGS.name,
                lambda m: any((e.payload.soc_pct or 0) > 55 for e in _of(site, m)), 30)
    finally:
        physics.cancel()
        await producer.stop()
        await sim.stop_modbus()
    charged = [e.payload for e in _of(site, events) if e.payload.active_power_mw == -1.5]
    assert charged and charged[-1].soc_pct > 55.0
    delivered = [e.payload for e in _of(site, await read_until(
        services.bootstrap, DEVICE_STATUS.name,
        lambda m: any(isinstance(e.payload, SetpointDelivered) for e in _of(site, m)), 20))
        if isinstance(e.payload, SetpointDelivered)]
    assert delivered[0].ok and delivered[0].setpoint_event_id == str(sp.event_id)
    await project_telemetry(services.dsn, services.bootstrap)
    row = await pg.fetchrow("SELECT * FROM telemetry.setpoints WHERE site = $1", site)
    assert row["active_power_mw"] == -1.5 and row["event_id"] == sp.event_id
    ok = await pg.fetchval("SELECT ok FROM telemetry.setpoint_deliveries "
                           "WHERE setpoint_event_id = $1", sp.event_id)
    assert ok is True
