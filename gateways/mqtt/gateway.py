"""MQTT gateway: subscribes the telemetry topics (see `parse`), publishes readings, sends
malformed messages to the dead-letter topic with the reason, reports devices that fall silent
(`BESS_MQTT_SILENT_AFTER_S`) as offline and back online with their next message, and publishes
setpoints to ``<prefix>/<site>/commands``. Reconnects with backoff when the broker goes away
(aiomqtt's reconnection pattern); subscriptions are QoS 1 with a persistent session id."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import orjson

from domain.telemetry.aggregation import parse_mapping
from domain.telemetry.state import is_stale
from gateways.mqtt.parse import ParseError, TopicConfig, parse
from gateways.telemetry.publisher import TelemetryPublisher
from gateways.telemetry.setpoints import consume_setpoints
from infra import mqtt
from infra.kafka_io import make_producer
from infra.logging import get_logger
from infra.settings import Settings
from infra.tasks import run_until_first_error
from schemas.envelope import Envelope
from schemas.telemetry import DeviceOffline, DeviceOnline, SetpointDelivered, SetpointIssued

log = get_logger("gateways.mqtt")


def topic_config(settings: Settings, sensor_sites: str = "") -> TopicConfig:
    return TopicConfig(
        prefix=settings.mqtt_prefix,
        legacy={settings.mqtt_topic_soc: "soc_pct", settings.mqtt_topic_power: "active_power_mw",
                settings.mqtt_topic_temp: "temperature_c"},
        default_site=settings.mqtt_site or settings.site_ids[0],
        sensor_sites=parse_mapping(sensor_sites),
    )


class MqttGateway:
    def __init__(self, settings: Settings, publisher: TelemetryPublisher,
                 config: TopicConfig | None = None, client_id: str = "bess-gateway-mqtt"):
        self.settings = settings
        self.publisher = publisher
        self.config = config or topic_config(settings)
        self.client_id = client_id
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.last_seen: dict[tuple[str, str], datetime] = {}
        self.offline: dict[tuple[str, str], datetime] = {}
        self.messages = 0

    async def handle(self, topic: str, payload: bytes) -> None:
        received = datetime.now(UTC)
        self.messages += 1
        try:
            reading = parse(self.config, topic, payload, received)
        except ParseError as exc:
            await self.publisher.reject(f"mqtt:{topic}", payload, str(exc))
            return
        key = (reading.site, reading.device_id)
        if key in self.offline or key not in self.last_seen:
            await self.publisher.status(DeviceOnline(
                site=reading.site, device_id=reading.device_id, source="mqtt",
                detected_at=received, offline_since=self.offline.pop(key, None)))
        self.last_seen[key] = received
        await self.publisher.reading(reading, origin=f"mqtt:{topic}", raw=payload)

    async def watch_silence(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            now = datetime.now(UTC)
            for key, seen in list(self.last_seen.items()):
                if key not in self.offline and is_stale(seen, now,
                                                        self.settings.mqtt_silent_after_s):
                    self.offline[key] = now
                    await self.publisher.status(DeviceOffline(
                        site=key[0], device_id=key[1], source="mqtt", detected_at=now,
                        last_seen=seen, failures=0,
                        reason=f"silent for {self.settings.mqtt_silent_after_s:g} s"))

    async def run(self) -> None:
        """Subscribe and handle messages until cancelled, reconnecting with backoff."""
        backoff = 0.5
        while True:
            try:
                async with mqtt.client(self.settings, identifier=self.client_id,
                                       clean_session=False) as client:
                    self.client = client
                    for topic in self.config.subscriptions():
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    backoff = 0.5
                    log.info("mqtt gateway subscribed", topics=self.config.subscriptions())
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            payload = str(payload).encode()
                        await self.handle(str(message.topic), bytes(payload))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.client = None
                log.warning("mqtt connection lost, reconnecting", error=str(exc), in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    async def write_setpoint(self, envelope: Envelope[SetpointIssued]) -> None:
        sp = envelope.payload
        topic = f"{self.settings.mqtt_prefix}/{sp.site}/commands"
        body = orjson.dumps({"active_power_mw": sp.active_power_mw,
                             "issued_at": sp.issued_at.isoformat(),
                             "setpoint_id": str(envelope.event_id)})
        error = None
        try:
            await asyncio.wait_for(self.connected.wait(), 10)
            assert self.client is not None
            await self.client.publish(topic, body, qos=1)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
        await self.publisher.status(SetpointDelivered(
            site=sp.site, device_id=topic, via="mqtt", setpoint_event_id=str(envelope.event_id),
            active_power_mw=sp.active_power_mw, delivered_at=datetime.now(UTC),
            ok=error is None, error=error))


async def run_gateway(settings: Settings, sensor_sites: str = "",
                      ready: asyncio.Event | None = None,
                      client_id: str = "bess-gateway-mqtt") -> None:
    producer = make_producer(settings.bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    publisher = TelemetryPublisher(producer, "gateway.mqtt")
    gateway = MqttGateway(settings, publisher, topic_config(settings, sensor_sites), client_id)
    setpoints_ready = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(gateway.run()),
        asyncio.create_task(gateway.watch_silence()),
        asyncio.create_task(publisher.flush_every()),
        asyncio.create_task(consume_setpoints(
            settings.bootstrap, "mqtt", settings.setpoint_via, lambda: _AllSites(),
            gateway.write_setpoint, setpoints_ready)),
    ]
    if ready is not None:
        async def _ready() -> None:
            await gateway.connected.wait()
            await setpoints_ready.wait()
            ready.set()
        tasks.append(asyncio.create_task(_ready()))
    try:
        await run_until_first_error(tasks)
    finally:
        with contextlib.suppress(Exception):
            await publisher.flush()
        await producer.stop()


class _AllSites:
    """Every site: MQTT commands go to the site's topic, whoever listens there."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(())

    def __len__(self) -> int:
        return 0
