"""MQTT gateway: subscribes the telemetry topics (see `parse`), publishes readings, sends
malformed messages to the dead-letter topic with the reason, reports devices that fall silent
(`BESS_MQTT_SILENT_AFTER_S`) as offline and back online with their next message, and publishes
setpoints to ``<prefix>/<site>/commands``.

Messages arrive through paho-mqtt, driven by the event loop (`gateways.mqtt.subscriber`: QoS 1,
persistent session), in batches; each batch is parsed, validated and handed to the producer at
once. QoS 1 messages are acknowledged to the broker once Kafka has confirmed what became of them
(in arrival order), so a gateway killed in between gets them again from the broker's session.
An unreachable broker or a lost connection is retried with backoff (0.5 to 30 s).
A `ConfigureMqttGateway` on ``telemetry.gateway-config.v1`` replaces the settings at run time:
the gateway unsubscribes what it no longer wants, reconnects with the new settings and reports
`GatewayConfigApplied`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ssl
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from domain.telemetry.aggregation import parse_mapping
from domain.telemetry.state import is_stale
from gateways.mqtt.parse import ParseError, TopicConfig, parse
from gateways.mqtt.subscriber import Batch, MqttUnavailable, Subscriber
from gateways.telemetry.config import follow_config
from gateways.telemetry.publisher import TelemetryPublisher
from gateways.telemetry.setpoints import consume_setpoints
from infra import mqtt
from infra.logging import get_logger
from infra.settings import Settings
from infra.tasks import run_until_first_error
from schemas.catalog import GATEWAY_CONFIG
from schemas.envelope import Envelope
from schemas.telemetry import (
    ConfigureMqttGateway,
    DeviceOffline,
    DeviceOnline,
    GatewayConfigApplied,
    SetpointDelivered,
    SetpointIssued,
)

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
        self.own_settings = settings  # from the environment, before any command
        self.publisher = publisher
        self.config = config or topic_config(settings)
        self.client_id = client_id
        self.subscriber: Subscriber | None = None
        self.connected = asyncio.Event()  # the current subscriber is (first) subscribed
        self.settled = asyncio.Event()  # subscribed, or idle because disabled
        self.last_seen: dict[tuple[str, str], datetime] = {}
        self.offline: dict[tuple[str, str], datetime] = {}
        self.messages = 0
        self._restart = asyncio.Event()
        self._next_config: TopicConfig | None = None  # taken over by the next session
        self._report: str | None = None  # event id of a command to report once connected
        self._reported = False

    # --- messages ---

    async def handle(self, topic: str, payload: bytes) -> None:
        """One message (tests); the gateway itself handles whole batches."""
        await self.handle_batch([(topic, payload)])

    async def handle_batch(self, batch: Batch) -> None:
        """Parse, validate and submit every message, then hand them to the producer at once."""
        publisher = self.publisher
        for topic, payload in batch:
            received = datetime.now(UTC)
            try:
                reading = parse(self.config, topic, payload, received)
            except ParseError as exc:
                publisher.submit_rejection(f"mqtt:{topic}", payload, str(exc))
                continue
            key = (reading.site, reading.device_id)
            if key in self.offline or key not in self.last_seen:
                await publisher.status(DeviceOnline(
                    site=reading.site, device_id=reading.device_id, source="mqtt",
                    detected_at=received, offline_since=self.offline.pop(key, None)))
            self.last_seen[key] = received
            publisher.submit(reading, origin=f"mqtt:{topic}", raw=payload)
        self.messages += len(batch)
        await publisher.drain()

    async def watch_silence(self, every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            now = datetime.now(UTC)
            silent_after_s = self.settings.mqtt_silent_after_s
            for key, seen in list(self.last_seen.items()):
                if key not in self.offline and is_stale(seen, now, silent_after_s):
                    self.offline[key] = now
                    await self.publisher.status(DeviceOffline(
                        site=key[0], device_id=key[1], source="mqtt", detected_at=now,
                        last_seen=seen, failures=0, reason=f"silent for {silent_after_s:g} s"))

    # --- connection ---

    async def run(self) -> None:
        """Subscribe and handle messages until cancelled: reconnect with backoff when the
        broker is unreachable or the connection drops, start over with new settings after
        `apply_config`."""
        backoff = 0.5
        while True:
            self._restart.clear()
            if self._next_config is not None:
                self.config, self._next_config = self._next_config, None
            if not self.settings.mqtt_enabled:
                log.info("mqtt gateway disabled, waiting for a configuration")
                await self._applied(None)
                self.settled.set()
                await self._restart.wait()
                continue
            try:
                await self._session()
                backoff = 0.5  # stopped for a new configuration
                continue
            except MqttUnavailable as exc:
                log.warning("mqtt unavailable, reconnecting", error=str(exc), in_s=backoff)
                await self._applied(str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._restart.wait()  # a new configuration: try it at once
            backoff = 0.5 if self._restart.is_set() else min(30.0, backoff * 2)

    async def _session(self) -> None:
        """One connection: subscribe, handle batches until the connection is lost (raises
        MqttUnavailable) or a new configuration stops it (returns)."""
        settings, topics = self.settings, self.config.subscriptions()
        subscriber = Subscriber(settings, identifier=self.client_id, topics=topics)
        await subscriber.start()
        acks = _Acknowledgements(subscriber)
        stopper = asyncio.create_task(self._stop_on_restart(subscriber, settings, topics))
        try:
            self.subscriber = subscriber
            self.connected.set()
            self.settled.set()
            log.info("mqtt gateway subscribed", broker=mqtt.broker_address(settings),
                     topics=topics)
            await self._applied(None)
            async for batch, mids in subscriber.batches():  # ends after a restart's finish()
                await self.handle_batch(batch)
                acks.add(mids, self._deliveries(mids))
                if acks.failed:
                    raise MqttUnavailable("Kafka did not confirm readings; reconnecting, the "
                                          "broker delivers the unacknowledged messages again")
        finally:
            stopper.cancel()
            self.connected.clear()
            self.subscriber = None
            if subscriber.connected.is_set() and not acks.failed:
                with contextlib.suppress(TimeoutError):  # acknowledge what was handled
                    async with asyncio.timeout(5):
                        await acks.idle.wait()
            await subscriber.disconnect()

    def _deliveries(self, mids: list[int]) -> list[asyncio.Future[Any]]:
        """The Kafka deliveries of what the last batch became."""
        producer = self.publisher.producer
        if isinstance(producer, GatewayProducer):
            return producer.take_deliveries()
        return [asyncio.ensure_future(producer.flush())] if mids else []  # all sent so far

    async def _stop_on_restart(self, subscriber: Subscriber, settings: Settings,
                               topics: list[str]) -> None:
        await self._restart.wait()
        same_session = mqtt.broker_address(settings) == mqtt.broker_address(self.settings) \
            and settings.mqtt_username == self.settings.mqtt_username
        wanted = set((self._next_config or self.config).subscriptions()) if same_session \
            else set()
        # the persistent session would keep delivering topics we no longer want
        await subscriber.unsubscribe([t for t in topics if t not in wanted])
        subscriber.finish()

    async def apply_config(self, envelope: Envelope[Any] | None) -> None:
        """A `ConfigureMqttGateway` (None: back to the settings the gateway started with):
        check it, take it over and reconnect; a command that cannot work (an unreadable CA
        file) is refused and reported."""
        if envelope is None:
            settings, event_id, by = self.own_settings, None, "reset"
        elif isinstance(envelope.payload, ConfigureMqttGateway):
            command = envelope.payload
            settings = mqtt.with_config(self.settings, command.config, command.password)
            event_id, by = str(envelope.event_id), command.requested_by
        else:
            return
        try:
            mqtt.tls_context(settings)
        except (OSError, ssl.SSLError) as exc:
            await self._report_applied(event_id, ok=False, error=f"TLS settings: {exc}")
            return
        self.settings = settings
        self._next_config = dataclasses.replace(topic_config(settings),
                                                sensor_sites=self.config.sensor_sites)
        self._report = event_id
        self._reported = False
        log.info("mqtt configuration changed", by=by,
                 broker=mqtt.broker_address(settings), enabled=settings.mqtt_enabled)
        self._restart.set()

    async def _applied(self, error: str | None) -> None:
        """Report the configuration in effect once per (re)configuration, after the first
        connection attempt with it."""
        if self._reported:
            return
        self._reported = True
        await self._report_applied(self._report, ok=True, error=error)

    async def _report_applied(self, config_event_id: str | None, *, ok: bool,
                              error: str | None) -> None:
        await self.publisher.event(GATEWAY_CONFIG.name, GatewayConfigApplied(
            gateway="mqtt", instance=self.client_id, config_event_id=config_event_id,
            applied_at=datetime.now(UTC), ok=ok, error=error,
            mqtt=mqtt.gateway_config(self.settings),
            password_set=self.settings.mqtt_password is not None))
        await self.publisher.flush()

    # --- setpoints ---

    async def write_setpoint(self, envelope: Envelope[SetpointIssued]) -> None:
        sp = envelope.payload
        topic = f"{self.settings.mqtt_prefix}/{sp.site}/commands"
        body = orjson.dumps({"active_power_mw": sp.active_power_mw,
                             "issued_at": sp.issued_at.isoformat(),
                             "setpoint_id": str(envelope.event_id)})
        error = None
        try:
            async with asyncio.timeout(10):
                await self.connected.wait()
            subscriber = self.subscriber
            if subscriber is None:
                raise MqttUnavailable("not connected")
            await subscriber.publish(topic, body, qos=1)
        except (MqttUnavailable, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
        await self.publisher.status(SetpointDelivered(
            site=sp.site, device_id=topic, via="mqtt", setpoint_event_id=str(envelope.event_id),
            active_power_mw=sp.active_power_mw, delivered_at=datetime.now(UTC),
            ok=error is None, error=error))


class _Acknowledgements:
    """QoS 1 packet ids waiting for Kafka: a batch's are acknowledged once every delivery of
    the batch succeeded and those of the batches before were acknowledged (MQTT wants PUBACKs
    in arrival order). After a failed delivery nothing more is acknowledged (`failed`)."""

    def __init__(self, subscriber: Subscriber):
        self.subscriber = subscriber
        self.failed = False
        self.idle = asyncio.Event()  # nothing waiting
        self.idle.set()
        self._waiting: deque[list[Any]] = deque()  # [mids, deliveries not yet done]

    def add(self, mids: list[int], deliveries: list[asyncio.Future[Any]]) -> None:
        if not mids or self.failed:
            return
        entry: list[Any] = [mids, len(deliveries)]
        self._waiting.append(entry)
        self.idle.clear()
        for delivery in deliveries:
            delivery.add_done_callback(functools.partial(self._delivered, entry))
        self._release()

    def _delivered(self, entry: list[Any], delivery: asyncio.Future[Any]) -> None:
        entry[1] -= 1
        if not self.failed and (delivery.cancelled() or delivery.exception() is not None):
            self.failed = True
            log.error("kafka did not confirm readings, their mqtt messages stay unacknowledged",
                      error=repr(None if delivery.cancelled() else delivery.exception()))
        self._release()

    def _release(self) -> None:
        if self.failed:
            self._waiting.clear()
        while self._waiting and self._waiting[0][1] == 0:
            self.subscriber.ack(self._waiting.popleft()[0])
        if not self._waiting:
            self.idle.set()


class GatewayProducer(AIOKafkaProducer):  # type: ignore[misc]
    """The gateway's producer: keeps the delivery futures of what it was given since the last
    `take_deliveries()`, so that the gateway acknowledges QoS 1 messages once Kafka confirmed
    the readings (and dead letters) made of them."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._deliveries: list[asyncio.Future[Any]] = []

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return self._keep(await super().send(*args, **kwargs))

    async def send_batch(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return self._keep(await super().send_batch(*args, **kwargs))

    def take_deliveries(self) -> list[asyncio.Future[Any]]:
        deliveries, self._deliveries = self._deliveries, []
        return deliveries

    def _keep(self, delivery: asyncio.Future[Any]) -> asyncio.Future[Any]:
        if len(self._deliveries) >= 10_000:  # nobody took them (no messages): forget the done
            self._deliveries = [d for d in self._deliveries if not d.done()]
        self._deliveries.append(delivery)
        return delivery


def make_gateway_producer(settings: Settings) -> GatewayProducer:
    """The gateway's producer (idempotent, acks=all as `make_producer`'s): big batches (the
    gateway builds them itself), short linger for the few single sends (status events, dead
    letters)."""
    return GatewayProducer(bootstrap_servers=settings.bootstrap, enable_idempotence=True,
                           acks="all", linger_ms=5, max_batch_size=512 * 1024)


async def run_gateway(settings: Settings, sensor_sites: str = "",
                      ready: asyncio.Event | None = None,
                      client_id: str = "bess-gateway-mqtt") -> None:
    """The gateway until cancelled: its configuration from the config topic (else
    `settings`), subscriptions, silence watch, setpoints. `ready`: subscribed (or disabled)
    and listening for setpoints."""
    producer = make_gateway_producer(settings)
    await producer.start()
    publisher = TelemetryPublisher(producer, "gateway.mqtt")
    gateway = MqttGateway(settings, publisher, topic_config(settings, sensor_sites), client_id)
    config_loaded = asyncio.Event()
    setpoints_ready = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(follow_config(settings.bootstrap, "mqtt", gateway.apply_config,
                                          config_loaded)),
        asyncio.create_task(gateway.watch_silence()),
        asyncio.create_task(publisher.flush_every()),
        asyncio.create_task(consume_setpoints(
            settings.bootstrap, "mqtt", settings.setpoint_via, lambda: _AllSites(),
            gateway.write_setpoint, setpoints_ready)),
    ]

    async def _run() -> None:
        await config_loaded.wait()  # connect with the configured settings, not the defaults
        await gateway.run()

    async def _ready() -> None:
        await gateway.settled.wait()
        await setpoints_ready.wait()
        if ready is not None:
            ready.set()

    tasks += [asyncio.create_task(_run()), asyncio.create_task(_ready())]
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
