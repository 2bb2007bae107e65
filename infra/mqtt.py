"""MQTT settings shared by the gateway, the simulator, the API and the bench: broker address,
TLS context, aiomqtt clients (username/password, TLS), a round-trip probe, and the conversion
between the settings and the gateway configuration commands (`MqttGatewayConfig`). The
gateway reads at high rate with paho-mqtt on the asyncio loop (`gateways.mqtt.subscriber`)."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import SecretStr

from infra.settings import Settings
from schemas.telemetry import MqttGatewayConfig


def broker_address(settings: Settings) -> tuple[str, int]:
    return settings.mqtt_host or "127.0.0.1", settings.mqtt_port


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``BESS_MQTT_TLS``/``_CA_FILE``/``_TLS_INSECURE`` (None: plain TCP)."""
    if not settings.mqtt_tls:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)
    if settings.mqtt_tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def client(settings: Settings, *, identifier: str | None = None, **kwargs: Any) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker (not yet connected: use ``async with``)."""
    host, port = broker_address(settings)
    return aiomqtt.Client(
        host, port,
        username=settings.mqtt_username,
        password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
        identifier=identifier, tls_context=tls_context(settings),
        tls_insecure=settings.mqtt_tls_insecure if settings.mqtt_tls else None,
        **kwargs)


def public_config(settings: Settings) -> dict[str, Any]:
    """The MQTT settings without secrets (``GET /api/mqtt/config``)."""
    host, port = broker_address(settings)
    p = settings.mqtt_prefix
    return {
        "enabled": settings.mqtt_enabled, "broker": host, "port": port,
        "username": settings.mqtt_username, "password_set": settings.mqtt_password is not None,
        "tls": settings.mqtt_tls, "ca_file": str(settings.mqtt_ca_file or "") or None,
        "tls_insecure": settings.mqtt_tls_insecure, "prefix": p,
        "topics": {"soc": settings.mqtt_topic_soc, "power": settings.mqtt_topic_power,
                   "temperature": settings.mqtt_topic_temp,
                   "site_telemetry": f"{p}/<site>/telemetry",
                   "discovery": f"{p}/sensors/<device_id>/<type>",
                   "commands": f"{p}/<site>/commands"},
        "site": settings.mqtt_site or settings.site_ids[0],
        "silent_after_s": settings.mqtt_silent_after_s,
    }


def gateway_config(settings: Settings) -> MqttGatewayConfig:
    """The MQTT part of `settings` as the `ConfigureMqttGateway` schema has it."""
    return MqttGatewayConfig(
        enabled=settings.mqtt_enabled, host=settings.mqtt_host, port=settings.mqtt_port,
        username=settings.mqtt_username, tls=settings.mqtt_tls,
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
        tls_insecure=settings.mqtt_tls_insecure, prefix=settings.mqtt_prefix,
        topic_soc=settings.mqtt_topic_soc, topic_power=settings.mqtt_topic_power,
        topic_temp=settings.mqtt_topic_temp, site=settings.mqtt_site,
        silent_after_s=settings.mqtt_silent_after_s)


def with_config(settings: Settings, config: MqttGatewayConfig,
                password: str | None = None) -> Settings:
    """`settings` with the MQTT part replaced by `config`; `password` None keeps the current
    password, ``""`` removes it."""
    update: dict[str, Any] = {
        "mqtt_enabled": config.enabled, "mqtt_host": config.host, "mqtt_port": config.port,
        "mqtt_username": config.username, "mqtt_tls": config.tls,
        "mqtt_ca_file": Path(config.ca_file) if config.ca_file else None,
        "mqtt_tls_insecure": config.tls_insecure, "mqtt_prefix": config.prefix,
        "mqtt_topic_soc": config.topic_soc, "mqtt_topic_power": config.topic_power,
        "mqtt_topic_temp": config.topic_temp, "mqtt_site": config.site,
        "mqtt_silent_after_s": config.silent_after_s}
    if password is not None:
        update["mqtt_password"] = SecretStr(password) if password else None
    return settings.model_copy(update=update)


async def probe(settings: Settings, timeout_s: float = 3.0) -> dict[str, Any]:
    """Connect, publish to ``<prefix>/probe/<id>`` and receive it back; report the round trip."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    topic = f"{settings.mqtt_prefix}/probe/{uuid.uuid4().hex[:12]}"
    host, port = broker_address(settings)
    try:
        async with asyncio.timeout(timeout_s):
            async with client(settings, timeout=timeout_s) as c:
                connected = loop.time()
                await c.subscribe(topic, qos=1)
                await c.publish(topic, b"probe", qos=1)
                async for _ in c.messages:
                    break
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        return {"ok": False, "broker": f"{host}:{port}", "error": str(exc) or type(exc).__name__,
                "elapsed_ms": round((loop.time() - started) * 1000, 1)}
    return {"ok": True, "broker": f"{host}:{port}",
            "connect_ms": round((connected - started) * 1000, 1),
            "round_trip_ms": round((loop.time() - connected) * 1000, 1)}
