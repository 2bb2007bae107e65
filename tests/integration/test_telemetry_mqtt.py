"""MQTT gateway against a real Mosquitto with a plain paho-mqtt publisher, into real Kafka and
the telemetry projection: the predecessor's topics, per-site and discovery topics with exact
converted values, malformed/out-of-range/duplicate/out-of-order input, a device that falls
silent and returns, a setpoint that reaches the simulated battery over MQTT, a broker restart,
and QoS 1 messages acknowledged only after Kafka confirmed their readings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime

import paho.mqtt.publish as paho_publish
import pytest

from domain.telemetry.battery import BatteryParams, BatteryState
from gateways.mqtt.gateway import (
    GatewayProducer,
    MqttGateway,
    make_gateway_producer,
    run_gateway,
    topic_config,
)
from gateways.simulator.device import SimulatedBattery
from gateways.telemetry.publisher import TelemetryPublisher
from infra.kafka_io import make_producer, publish
from infra.local.mosquitto import MosquittoServer
from infra.local.process import free_port
from infra.modbus import load_profile
from schemas.catalog import DEVICE_STATUS, SETPOINTS, TELEMETRY_READINGS
from schemas.envelope import new_envelope
from schemas.telemetry import DeviceOffline, DeviceOnline, SetpointIssued
from tests.integration.helpers import read_until
from tests.integration.telemetry_helpers import eventually, project_telemetry, running

pytestmark = pytest.mark.integration


def _of(site: str, events: list) -> list:
    return [e for e in events if getattr(e.payload, "site", None) == site]


def _pub(port: int, messages: list[tuple[str, object]]) -> None:
    """Publish with a plain paho-mqtt client (QoS 1), as a field device would."""
    paho_publish.multiple(
        [{"topic": t, "payload": p if isinstance(p, bytes) else json.dumps(p), "qos": 1}
         for t, p in messages], hostname="127.0.0.1", port=port)


def _gateway(services, mosquitto: int, **overrides):
    tag = uuid.uuid4().hex[:8]
    site = f"mq-{tag}"
    settings = services.settings(mqtt_port=mosquitto, mqtt_prefix=f"t{tag}", mqtt_site=site,
                                 mqtt_topic_soc=f"t{tag}/bess/soc",
                                 mqtt_topic_power=f"t{tag}/bess/power",
                                 mqtt_topic_temp=f"t{tag}/bess/temperature", **overrides)
    return site, settings, tag


async def test_topics_values_and_bad_input(services, mosquitto, pg) -> None:
    site, settings, tag = _gateway(services, mosquitto)
    p = settings.mqtt_prefix
    ts = "2025-01-25T20:30:00Z"
    async with running(lambda ready: run_gateway(settings, f"esp-{tag}={site}", ready,
                                                 client_id=f"gw-{tag}")):
        await asyncio.to_thread(_pub, mosquitto, [
            (settings.mqtt_topic_soc, {"value": 75.5, "timestamp": ts, "unit": "%"}),
            (settings.mqtt_topic_power, {"value": 2500, "timestamp": ts, "unit": "kW"}),
            (settings.mqtt_topic_temp, {"value": 28.3, "timestamp": ts, "unit": "°C"}),
            (f"{p}/{site}/telemetry", {"device_id": "meter", "timestamp": ts,
                                       "frequency_hz": 49.98, "voltage_v": 0.4,
                                       "units": {"voltage_v": "kV"}}),
            (f"{p}/sensors/esp-{tag}/temperature", {"value": 301.15, "unit": "K",
                                                    "timestamp": ts}),
            # bad input: malformed, out of range, unknown unit
            (settings.mqtt_topic_soc, b"{oops"),
            (settings.mqtt_topic_soc, {"value": 130, "timestamp": ts}),
            (f"{p}/{site}/telemetry", {"device_id": "meter", "soc_pct": 50, "frequency_hz": 5}),
            (settings.mqtt_topic_power, {"value": 1, "unit": "parsecs"}),
            # a repeat and an older reading
            (settings.mqtt_topic_soc, {"value": 75.5, "timestamp": ts, "unit": "%"}),
            (settings.mqtt_topic_soc, {"value": 70.0, "timestamp": "2025-01-25T20:29:00Z"}),
        ])
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: len(_of(site, m)) >= 6, 30)
        letters = await read_until(
            services.bootstrap, TELEMETRY_READINGS.dlq,
            lambda m: sum(1 for e in m if tag in e.payload.original_topic) >= 4, 30)
    readings = [e.payload for e in _of(site, events)]
    assert len(readings) == 6  # the repeat is dropped, the older reading is kept
    by_device = {(r.device_id, next(iter(r.quantities()))): r for r in readings[:5]}
    assert by_device[(f"{site}-bess", "soc_pct")].soc_pct == 75.5
    assert by_device[(f"{site}-bess", "active_power_mw")].active_power_mw == 2.5
    assert by_device[(f"{site}-bess", "temperature_c")].temperature_c == 28.3
    meter = next(r for r in readings if r.device_id == "meter")
    assert meter.frequency_hz == 49.98 and meter.voltage_v == 400.0
    sensor = next(r for r in readings if r.device_id == f"esp-{tag}")
    assert sensor.temperature_c == pytest.approx(28.0) and sensor.site == site
    assert all(r.source == "mqtt" for r in readings)
    assert readings[0].device_time == datetime(2025, 1, 25, 20, 30, tzinfo=UTC)
    assert readings[-1].soc_pct == 70.0  # out of order, in the history

    reasons = {e.payload.original_topic: [] for e in letters}
    for e in letters:
        reasons[e.payload.original_topic].append(e.payload.error)
    soc_reasons = reasons[f"mqtt:{settings.mqtt_topic_soc}"]
    assert any("not valid JSON" in r for r in soc_reasons)
    assert any("less than or equal to 100" in r or "out of range" in r for r in soc_reasons)
    assert any("frequency_hz=5 out of range" in r for r in reasons[f"mqtt:{p}/{site}/telemetry"])
    assert any("unit 'parsecs'" in r for r in reasons[f"mqtt:{settings.mqtt_topic_power}"])
    raw = next(e.payload for e in letters if "not valid JSON" in e.payload.error)
    assert raw.value_b64 == "e29vcHM="  # the original bytes b"{oops"

    await project_telemetry(services.dsn, services.bootstrap)
    latest = {(r["device_id"], r["quantity"]): r for r in await pg.fetch(
        "SELECT * FROM telemetry.latest WHERE site = $1", site)}
    assert latest[(f"{site}-bess", "soc_pct")]["value"] == 75.5  # not the older 70.0
    assert latest[(f"{site}-bess", "active_power_mw")]["value"] == 2.5
    assert latest[("meter", "voltage_v")]["value"] == 400.0
    assert await pg.fetchval("SELECT count(*) FROM telemetry.readings WHERE site = $1 "
                             "AND soc_pct IS NOT NULL", site) == 2


async def test_silent_device_goes_offline_and_loses_nothing_after_return(
        services, mosquitto) -> None:
    site, settings, tag = _gateway(services, mosquitto, mqtt_silent_after_s=1.0)
    topic = f"{settings.mqtt_prefix}/{site}/telemetry"
    async with running(lambda ready: run_gateway(settings, "", ready, client_id=f"gw-{tag}")):
        await asyncio.to_thread(_pub, mosquitto, [(topic, {"device_id": "d", "soc_pct": 10})])
        await read_until(services.bootstrap, DEVICE_STATUS.name,
                         lambda m: any(isinstance(e.payload, DeviceOffline)
                                       for e in _of(site, m)), 30)
        after = [(topic, {"device_id": "d", "soc_pct": 20 + i}) for i in range(50)]
        await asyncio.to_thread(_pub, mosquitto, after)
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: len(_of(site, m)) >= 51, 30)
    assert [e.payload.soc_pct for e in _of(site, events)] == [10] + [20 + i for i in range(50)]
    status = await read_until(services.bootstrap, DEVICE_STATUS.name,
                              lambda m: len(_of(site, m)) >= 3, 20)
    kinds = [type(e.payload) for e in _of(site, status)]
    assert kinds[:3] == [DeviceOnline, DeviceOffline, DeviceOnline]
    assert _of(site, status)[2].payload.offline_since is not None


async def test_gateway_outage_loses_no_queued_readings(services, mosquitto) -> None:
    """QoS 1 with a persistent session: readings published while the gateway is down arrive."""
    site, settings, tag = _gateway(services, mosquitto)
    topic = f"{settings.mqtt_prefix}/{site}/telemetry"
    async with running(lambda ready: run_gateway(settings, "", ready, client_id=f"gw-{tag}")):
        await asyncio.to_thread(_pub, mosquitto, [(topic, {"device_id": "d", "soc_pct": 1})])
        await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                         lambda m: len(_of(site, m)) >= 1, 30)
    await asyncio.to_thread(_pub, mosquitto,
                            [(topic, {"device_id": "d", "soc_pct": 2 + i}) for i in range(20)])
    async with running(lambda ready: run_gateway(settings, "", ready, client_id=f"gw-{tag}")):
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: len(_of(site, m)) >= 21, 30)
    assert [e.payload.soc_pct for e in _of(site, events)] == list(range(1, 22))


async def test_setpoint_over_mqtt_moves_the_simulated_battery(services, mosquitto) -> None:
    site, settings, tag = _gateway(services, mosquitto, setpoint_via="mqtt")
    params = BatteryParams(capacity_mwh=0.05)
    sim = SimulatedBattery(site, "sim", load_profile("default"), params,
                           BatteryState(soc_pct=50.0), tick_s=0.05)
    tasks = [asyncio.create_task(sim.run_physics()),
             asyncio.create_task(sim.run_mqtt(settings, interval_s=0.2))]
    producer = make_producer(services.bootstrap)
    await producer.start()
    try:
        async with running(lambda ready: run_gateway(settings, "", ready,
                                                     client_id=f"gw-{tag}")):
            await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                             lambda m: len(_of(site, m)) >= 1, 30)  # the sim is subscribed
            sp = new_envelope(SetpointIssued(site=site, active_power_mw=1.0,
                                             issued_at=datetime.now(UTC), issued_by="test"),
                              occurred_at=datetime.now(UTC), source="test")
            await (await publish(producer, SETPOINTS.name, sp))
            await eventually(lambda: sim.state.setpoint_mw == 1.0)
            await eventually(lambda: sim.state.soc_pct < 45.0)
            events = await read_until(
                services.bootstrap, TELEMETRY_READINGS.name,
                lambda m: any((e.payload.soc_pct or 100) < 45 for e in _of(site, m)), 30)
    finally:
        for t in tasks:
            t.cancel()
        await producer.stop()
    discharging = [e.payload for e in _of(site, events) if e.payload.active_power_mw == 1.0]
    assert discharging and discharging[-1].soc_pct < 45.0
    assert discharging[-1].device_id == "sim-meter"


async def test_broker_restart_the_gateway_reconnects_and_loses_nothing_after(
        services, tmp_path) -> None:
    """The broker goes away (no persistence: it forgets the session); the gateway reconnects
    with backoff and subscribes again; every reading published once it is back arrives, in
    order."""
    port = free_port()
    broker = MosquittoServer(tmp_path / "mq", port)
    broker.start()
    site, settings, tag = _gateway(services, port)
    topic = f"{settings.mqtt_prefix}/{site}/telemetry"
    producer = make_gateway_producer(settings)
    await producer.start()
    gateway = MqttGateway(settings, TelemetryPublisher(producer, "gateway.mqtt"),
                          topic_config(settings), client_id=f"gw-{tag}")
    task = asyncio.create_task(gateway.run())
    try:
        await asyncio.wait_for(gateway.connected.wait(), 20)
        subscriber = gateway.subscriber
        assert subscriber is not None
        await asyncio.to_thread(_pub, port, [(topic, {"device_id": "d", "soc_pct": 1})])
        await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                         lambda m: len(_of(site, m)) >= 1, 30)
        broker.stop()
        await eventually(lambda: not subscriber.connected.is_set())
        broker = MosquittoServer(tmp_path / "mq", port)
        broker.start()
        await eventually(lambda: gateway.subscriber is not None
                         and gateway.subscriber is not subscriber
                         and gateway.subscriber.connected.is_set(), 30)
        await asyncio.to_thread(_pub, port, [(topic, {"device_id": "d", "soc_pct": 2 + i})
                                             for i in range(20)])
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: len(_of(site, m)) >= 21, 30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await gateway.publisher.flush()
        await producer.stop()
        broker.stop()
    assert [e.payload.soc_pct for e in _of(site, events)] == list(range(1, 22))


class _KafkaNeverConfirmsReadings(GatewayProducer):
    """Sends everything but readings; a reading's delivery never completes."""

    async def send(self, topic: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if topic != TELEMETRY_READINGS.name:
            return await super().send(topic, *args, **kwargs)
        return self._keep(asyncio.get_running_loop().create_future())

    async def send_batch(self, batch, topic: str, **kwargs):  # type: ignore[no-untyped-def]
        if topic != TELEMETRY_READINGS.name:
            return await super().send_batch(batch, topic, **kwargs)
        return self._keep(asyncio.get_running_loop().create_future())


async def test_messages_are_acknowledged_only_after_kafka_confirmed(services, mosquitto) -> None:
    """A gateway stopped before Kafka confirmed the readings has not acknowledged their QoS 1
    messages: the broker's session delivers them to the next gateway, and they arrive."""
    site, settings, tag = _gateway(services, mosquitto)
    topic = f"{settings.mqtt_prefix}/{site}/telemetry"
    producer = _KafkaNeverConfirmsReadings(bootstrap_servers=services.bootstrap)
    await producer.start()
    gateway = MqttGateway(settings, TelemetryPublisher(producer, "gateway.mqtt"),
                          topic_config(settings), client_id=f"gw-{tag}")
    task = asyncio.create_task(gateway.run())
    try:
        await asyncio.wait_for(gateway.connected.wait(), 20)
        await asyncio.to_thread(_pub, mosquitto, [(topic, {"device_id": "d", "soc_pct": 1 + i})
                                                  for i in range(5)])
        await eventually(lambda: gateway.messages >= 5)
    finally:
        task.cancel()  # waits a few seconds for the confirmations, in vain
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
    async with running(lambda ready: run_gateway(settings, "", ready, client_id=f"gw-{tag}")):
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: len(_of(site, m)) >= 5, 30)
    assert [e.payload.soc_pct for e in _of(site, events)] == [1, 2, 3, 4, 5]
