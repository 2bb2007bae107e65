"""MQTT access shared by the gateway, the simulator, the API's connection test and the bench:
aiomqtt clients built from the settings (username/password, TLS) and a round-trip probe."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from typing import Any

import aiomqtt

from infra.settings import Settings


def broker_address(settings: Settings) -> tuple[str, int]:
    return settings.mqtt_host or "127.0.0.1", settings.mqtt_port


def client(settings: Settings, *, identifier: str | None = None, **kwargs: Any) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker (not yet connected: use ``async with``)."""
    host, port = broker_address(settings)
    tls_context = None
    if settings.mqtt_tls:
        tls_context = ssl.create_default_context(
            cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)
        if settings.mqtt_tls_insecure:
            tls_context.check_hostname = False
            tls_context.verify_mode = ssl.CERT_NONE
    return aiomqtt.Client(
        host, port,
        username=settings.mqtt_username,
        password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
        identifier=identifier, tls_context=tls_context,
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
        "topics": {"soc": settings.mqtt_topic_soc, "power": settings.mqtt_topic_power,
                   "temperature": settings.mqtt_topic_temp,
                   "site_telemetry": f"{p}/<site>/telemetry",
                   "discovery": f"{p}/sensors/<device_id>/<type>",
                   "commands": f"{p}/<site>/commands"},
        "site": settings.mqtt_site or settings.site_ids[0],
        "silent_after_s": settings.mqtt_silent_after_s,
    }


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
