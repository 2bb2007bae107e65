"""Telemetry: REST ingestion (seed 002), setpoints, site state, history, gateway config (read
and changed at run time through Kafka) and connection tests (seed 003). Readings, setpoints and
configuration changes are published to Kafka, never written to tables; the reads come from
the ``telemetry`` projection (and the configuration topic)."""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator

from api.deps import PoolDep, ProducerDep, SettingsDep
from domain.telemetry.aggregation import (
    SensorValue,
    aggregate,
    methods_from,
    weights_from,
)
from domain.telemetry.registers import ProfileError
from domain.telemetry.state import is_stale, source_label
from domain.telemetry.validation import Limits
from infra import modbus, mqtt
from infra.api_keys import KeyRing
from infra.kafka_io import publish
from infra.settings import Settings
from schemas.catalog import GATEWAY_CONFIG, SETPOINTS, TELEMETRY_READINGS
from schemas.envelope import Envelope, MessageDecodeError, decode, new_envelope
from schemas.telemetry import (
    QUANTITIES,
    ConfigureModbusGateway,
    ConfigureMqttGateway,
    GatewayConfigApplied,
    ModbusDeviceConfig,
    ModbusGatewayConfig,
    MqttGatewayConfig,
    SetpointIssued,
    TelemetryReceived,
)

router = APIRouter(tags=["telemetry"])
_KEYRINGS: dict[int, KeyRing] = {}
REST_NAMES = {"soc_percent": "soc_pct", "soh_percent": "soh_pct"}
"""REST body names of seed 002 that differ from the event's field names."""


def _check_key(settings: Settings, key: str | None) -> None:
    ring = _KEYRINGS.get(id(settings))
    if ring is None:
        ring = _KEYRINGS[id(settings)] = KeyRing.from_settings(settings)
    if not ring.verify(key):
        raise HTTPException(401, detail="missing or invalid X-API-KEY")


class TelemetryIn(BaseModel):
    """Body of ``POST /api/bess/telemetry`` (seed 002), plus optional site/device/timestamp."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    soc_percent: float | None = Field(None, description="State of charge, %.")
    active_power_mw: float | None = Field(None, description="MW, positive = discharge.")
    temperature_c: float | None = None
    frequency_hz: float | None = None
    voltage_v: float | None = None
    soh_percent: float | None = None
    pv_power_mw: float | None = None
    load_power_mw: float | None = None
    site: str | None = Field(None, description="Default: the first configured site.")
    device_id: str | None = Field(None, description="Default: <site>-rest or <site>-manual.")
    timestamp: AwareDatetime | None = Field(None, description="Device time; default: now.")
    source: Literal["rest", "manual"] = Field("rest", description="manual = typed in by a user.")

    @model_validator(mode="after")
    def _some_value(self) -> TelemetryIn:
        if not self.values():
            raise ValueError("at least one of soc_percent, active_power_mw, temperature_c, ... "
                             "is required")
        return self

    def values(self) -> dict[str, float]:
        out = {}
        for name in ("soc_percent", "active_power_mw", "temperature_c", "frequency_hz",
                     "voltage_v", "soh_percent", "pv_power_mw", "load_power_mw"):
            value = getattr(self, name)
            if value is not None:
                out[REST_NAMES.get(name, name)] = value
        return out


class TelemetryAnswer(BaseModel):
    status: str
    message: str
    data: dict[str, Any]


def _iso_ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@router.post("/api/bess/telemetry", response_model=TelemetryAnswer)
async def ingest(body: TelemetryIn, settings: SettingsDep, producer: ProducerDep,
                 x_api_key: str | None = Header(None)) -> TelemetryAnswer:
    """Ingest one reading (X-API-KEY); it is published to telemetry.readings.v1."""
    _check_key(settings, x_api_key)
    values = body.values()
    problems = Limits().problems(values)
    if problems:
        raise HTTPException(422, detail=problems)
    now = datetime.now(UTC)
    site = body.site or settings.site_ids[0]
    reading = TelemetryReceived(site=site, device_id=body.device_id or f"{site}-{body.source}",
                                source=body.source, device_time=body.timestamp or now,
                                received_at=now, **values)
    envelope = new_envelope(reading, occurred_at=reading.device_time, source=f"api.{body.source}")
    await (await publish(producer, TELEMETRY_READINGS.name, envelope))
    data: dict[str, Any] = {k: getattr(body, k) for k in
                            ("soc_percent", "active_power_mw", "temperature_c")}
    data.update({k: v for k, v in body.model_dump(exclude_none=True).items()
                 if k not in data and k not in ("timestamp", "source")})
    data.update(timestamp=_iso_ms(reading.device_time), site=site, device_id=reading.device_id,
                source=body.source, event_id=str(envelope.event_id))
    return TelemetryAnswer(status="OK", message="Telemetrie erfolgreich aktualisiert", data=data)


class SetpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    site: str
    active_power_mw: float = Field(description="MW, positive = discharge.")
    via: Literal["modbus", "mqtt"] | None = None
    issued_by: str = "api"


@router.post("/api/bess/setpoint", status_code=202)
async def setpoint(body: SetpointIn, settings: SettingsDep, producer: ProducerDep,
                   x_api_key: str | None = Header(None)) -> dict[str, Any]:
    """Issue an active power setpoint for a site (X-API-KEY); the gateway writes it."""
    _check_key(settings, x_api_key)
    payload = SetpointIssued(site=body.site, active_power_mw=body.active_power_mw,
                             issued_at=datetime.now(UTC), issued_by=body.issued_by, via=body.via)
    envelope = new_envelope(payload, occurred_at=payload.issued_at, source="api")
    await (await publish(producer, SETPOINTS.name, envelope))
    return {"status": "accepted", "event_id": str(envelope.event_id), "site": body.site,
            "active_power_mw": body.active_power_mw}


class DevicePublic(BaseModel):
    site: str
    device_id: str
    source: str
    readings: int
    last_device_time: datetime | None
    online: bool | None
    stale: bool
    status_at: datetime | None
    status_reason: str | None


@router.get("/api/bess/status")
async def status(pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    """Telemetry sources and, per site, its devices (online, stale) and latest setpoint."""
    now = datetime.now(UTC)
    devices = await pool.fetch("SELECT * FROM telemetry.devices ORDER BY site, device_id")
    setpoints = {r["site"]: dict(r) for r in await pool.fetch("""
        SELECT s.*, d.ok AS delivered_ok, d.delivered_at, d.delivered_to, d.error AS delivery_error
        FROM telemetry.setpoints s LEFT JOIN LATERAL (
            SELECT * FROM telemetry.setpoint_deliveries x WHERE x.setpoint_event_id = s.event_id
            ORDER BY delivered_at DESC LIMIT 1) d ON true""")}
    sites: dict[str, dict[str, Any]] = {s: {"site": s, "devices": []} for s in settings.site_ids}
    for r in devices:
        entry = sites.setdefault(r["site"], {"site": r["site"], "devices": []})
        entry["devices"].append(DevicePublic(
            **dict(r), stale=is_stale(r["last_device_time"], now,
                                      settings.telemetry_stale_after_s)).model_dump(mode="json"))
    for site, entry in sites.items():
        sp = setpoints.get(site)
        entry["setpoint"] = None if sp is None else {
            k: (str(v) if k == "event_id" else v) for k, v in sp.items() if k != "site"}
    return {"status": "OK", "sources": {
        "modbus": settings.modbus_enabled, "mqtt": settings.mqtt_enabled,
        "rest": bool(KeyRing.from_settings(settings))}, "sites": list(sites.values())}


@router.get("/api/state")
async def state(pool: PoolDep, settings: SettingsDep,
                site: str | None = Query(None, description="Default: the first site.")
                ) -> dict[str, Any]:
    """Current state of a site: each quantity aggregated over its devices, with its source."""
    site = site or settings.site_ids[0]
    now = datetime.now(UTC)
    rows = await pool.fetch("SELECT * FROM telemetry.latest WHERE site = $1", site)
    methods = methods_from(settings.telemetry_aggregation)
    weights = weights_from(settings.telemetry_sensor_weights)
    out: dict[str, Any] = {"site": site, "as_of": None}
    details: dict[str, Any] = {}
    for quantity in QUANTITIES:
        qrows = [r for r in rows if r["quantity"] == quantity]
        if not qrows:
            out[quantity] = None
            continue
        fresh = [r for r in qrows if not is_stale(r["device_time"], now,
                                                  settings.telemetry_stale_after_s)]
        used = fresh or qrows
        value = aggregate([SensorValue(r["device_id"], r["value"], weights.get(r["device_id"], 1))
                           for r in used], methods[quantity], settings.telemetry_outlier_z)
        newest = max(used, key=lambda r: r["device_time"])
        out[quantity] = value
        details[quantity] = {
            "value": value, "method": methods[quantity], "devices": [r["device_id"] for r in used],
            "device_time": newest["device_time"], "source": newest["source"],
            "source_label": source_label(newest["source"]), "stale": not fresh}
        if out["as_of"] is None or newest["device_time"] > out["as_of"]:
            out["as_of"] = newest["device_time"]
    labels = {d["source_label"] for d in details.values()}
    out["telemetry_source"] = labels.pop() if len(labels) == 1 else ("mixed" if labels else None)
    out["details"] = details
    return out


@router.get("/api/history/state")
async def history(pool: PoolDep, settings: SettingsDep,
                  hours: float = Query(24, gt=0, le=24 * 366),
                  site: str | None = Query(None), device_id: str | None = Query(None),
                  bucket_s: int | None = Query(None, ge=1, description="Default: <= 500 points."),
                  end: AwareDatetime | None = Query(None, description="Default: now.")
                  ) -> dict[str, Any]:
    """Readings of the last `hours` (by device time), averaged per bucket."""
    site = site or settings.site_ids[0]
    end = end or datetime.now(UTC)
    start = end - timedelta(hours=hours)
    bucket = bucket_s or max(1, math.ceil(hours * 3600 / 500))
    avgs = ", ".join(f"avg({q}) AS {q}" for q in QUANTITIES)
    rows = await pool.fetch(f"""
        SELECT date_bin(make_interval(secs => $5), device_time, '2000-01-03 00:00+00') AS t,
               count(*) AS n, {avgs}
        FROM telemetry.readings
        WHERE site = $1 AND ($2::text IS NULL OR device_id = $2)
          AND device_time >= $3 AND device_time < $4
        GROUP BY t ORDER BY t""", site, device_id, start, end, float(bucket))
    points = [{"time": r["t"], "readings": r["n"],
               **{q: r[q] for q in QUANTITIES if r[q] is not None}} for r in rows]
    return {"site": site, "device_id": device_id, "start": start, "end": end, "bucket_s": bucket,
            "count": len(points), "points": points}


class ModbusTestIn(BaseModel):
    host: str | None = None
    port: int | None = None
    unit_id: int | None = None
    profile: str | None = None
    timeout_s: float = Field(2.0, gt=0, le=30)


@router.post("/api/modbus/test")
async def modbus_test(settings: SettingsDep, body: ModbusTestIn | None = None) -> dict[str, Any]:
    """Connect to a Modbus device, read its profile's registers, report values or the error."""
    body = body or ModbusTestIn()
    host = body.host or settings.modbus_host
    if host is None:
        raise HTTPException(422, detail="host is required (no BESS_MODBUS_HOST configured)")
    port = body.port or settings.modbus_port
    unit = body.unit_id or settings.modbus_unit_id
    try:
        profile = modbus.load_profile(body.profile or settings.modbus_profile, settings)
    except ProfileError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    result = await modbus.probe(host, port, unit, profile, body.timeout_s)
    return {"host": host, "port": port, "unit_id": unit, "profile": profile.name, **result}


class MqttTestIn(BaseModel):
    host: str | None = None
    port: int | None = None
    timeout_s: float = Field(3.0, gt=0, le=30)


@router.post("/api/mqtt/test")
async def mqtt_test(settings: SettingsDep, body: MqttTestIn | None = None) -> dict[str, Any]:
    """Connect to the MQTT broker, publish and receive a probe message, report the timing."""
    body = body or MqttTestIn()
    update: dict[str, Any] = {}
    if body.host:
        update["mqtt_host"] = body.host
    if body.port:
        update["mqtt_port"] = body.port
    current = (await _gateway_config(settings)).mqtt_settings(settings)
    return await mqtt.probe(current.model_copy(update=update), body.timeout_s)


# --- gateway configuration at run time (seed 003) -------------------------------------------
# POST publishes a complete ConfigureModbusGateway/ConfigureMqttGateway on the compacted
# telemetry.gateway-config.v1 (the API never talks to a gateway); the gateways apply it and
# report GatewayConfigApplied. GET reads the topic: the latest command, else the environment.


@dataclass
class _ConfigState:
    """The latest records of telemetry.gateway-config.v1, decoded."""

    commands: dict[str, Envelope[Any]]
    reports: dict[str, GatewayConfigApplied]
    error: str | None = None

    def mqtt_command(self) -> ConfigureMqttGateway | None:
        e = self.commands.get("mqtt")
        return e.payload if e is not None else None

    def modbus_command(self) -> ConfigureModbusGateway | None:
        e = self.commands.get("modbus")
        return e.payload if e is not None else None

    def mqtt_settings(self, settings: Settings) -> Settings:
        command = self.mqtt_command()
        if command is None:
            return settings
        return mqtt.with_config(settings, command.config, command.password)

    def meta(self, gateway: str) -> dict[str, Any]:
        """Where the configuration comes from, and what the gateway last reported."""
        envelope = self.commands.get(gateway)
        event_id = str(envelope.event_id) if envelope is not None else None
        out: dict[str, Any] = {
            "source": "api" if envelope is not None else "environment",
            "config_event_id": event_id,
            "updated_at": envelope.payload.requested_at if envelope is not None else None,
            "updated_by": envelope.payload.requested_by if envelope is not None else None,
            "gateway": None,
        }
        report = self.reports.get(gateway)
        if report is not None:
            in_effect = report.modbus or report.mqtt
            out["gateway"] = {
                **report.model_dump(mode="json", exclude={"gateway", "modbus", "mqtt"}),
                "in_sync": report.ok and report.config_event_id == event_id,
                "config": in_effect.model_dump(mode="json") if in_effect else None}
        if self.error is not None:
            out["config_unavailable"] = self.error
        return out


async def _gateway_config(settings: Settings, *, timeout_s: float = 5.0,
                          until: Callable[[_ConfigState], bool] | None = None) -> _ConfigState:
    """Read telemetry.gateway-config.v1 to its end (then on until `until`, if given)."""
    state = _ConfigState({}, {})
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    tp = TopicPartition(GATEWAY_CONFIG.name, 0)
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            if GATEWAY_CONFIG.name not in await consumer.topics():
                state.error = f"no topic {GATEWAY_CONFIG.name} (bess topics create)"
                return state
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                    for r in records:
                        _take(state, r.key, r.value)
                if await consumer.position(tp) >= end and (until is None or until(state)):
                    return state
    except (KafkaError, TimeoutError) as exc:
        state.error = str(exc) or type(exc).__name__
        return state
    finally:
        await consumer.stop()


async def _readable_gateway_config(settings: Settings) -> _ConfigState:
    """`_gateway_config`, or HTTP 503 when the configuration topic cannot be read."""
    state = await _gateway_config(settings)
    if state.error is not None:
        raise HTTPException(503, detail=f"configuration topic unavailable: {state.error}")
    return state


def _take(state: _ConfigState, key: bytes | None, value: bytes | None) -> None:
    name = (key or b"").decode(errors="replace")
    if value is None:  # tombstone: back to the environment
        state.commands.pop(name, None)
        return
    try:
        envelope = decode(value)
    except MessageDecodeError:
        return
    if isinstance(envelope.payload, ConfigureModbusGateway | ConfigureMqttGateway):
        state.commands[name] = envelope
    elif isinstance(envelope.payload, GatewayConfigApplied):
        state.reports[envelope.payload.gateway] = envelope.payload


def _no_nulls(model: BaseModel, nullable: set[str]) -> None:
    nulls = [n for n in model.model_fields_set if getattr(model, n) is None and n not in nullable]
    if nulls:
        raise ValueError(f"{', '.join(sorted(nulls))} cannot be null (leave it out to keep it)")


async def _publish_config(settings: Settings, producer: Any, gateway: str,
                          envelope: Envelope[Any] | None, wait: bool,
                          timeout_s: float) -> _ConfigState | None:
    """Publish the command (None: a tombstone); with `wait`, read until the gateway reports
    it applied."""
    requested_at = datetime.now(UTC)
    if envelope is None:
        await (await producer.send(GATEWAY_CONFIG.name, None, key=gateway.encode()))
    else:
        await (await publish(producer, GATEWAY_CONFIG.name, envelope))
    if not wait:
        return None
    event_id = str(envelope.event_id) if envelope is not None else None

    def applied(state: _ConfigState) -> bool:
        report = state.reports.get(gateway)
        return report is not None and report.config_event_id == event_id and (
            event_id is not None or report.applied_at >= requested_at)

    return await _gateway_config(settings, timeout_s=timeout_s, until=applied)


def _config_answer(envelope: Envelope[Any] | None, state: _ConfigState | None,
                   config: dict[str, Any], gateway: str) -> JSONResponse:
    body: dict[str, Any] = {"status": "accepted", "config": config,
                            "config_event_id": str(envelope.event_id) if envelope else None}
    code = 202
    if state is not None:
        report = state.reports.get(gateway)
        if report is not None and state.error is None:
            body["gateway"] = report.model_dump(mode="json", exclude={"modbus", "mqtt"})
            body["status"], code = ("applied", 200) if report.ok else ("refused", 409)
        else:
            body["gateway"] = None  # not (yet) reported: is the gateway running?
    return JSONResponse(jsonable_encoder(body), code)


WaitQuery = Annotated[bool, Query(description="Answer when the gateway has applied it.")]
TimeoutQuery = Annotated[float, Query(gt=0, le=60, description="How long to wait, s.")]


def _modbus_public(settings: Settings, state: _ConfigState) -> dict[str, Any]:
    try:
        own, error = modbus.devices_from_settings(settings), None
    except (ValueError, json.JSONDecodeError) as exc:
        own, error = [], str(exc)
    command = state.modbus_command()
    if command is not None:
        settings, devices = modbus.with_config(settings, command.config, own)
        devices_from = "environment" if command.config.devices is None else "api"
    else:
        devices, devices_from = own, "environment"
    return {"enabled": settings.modbus_enabled, "interval_s": settings.modbus_interval_s,
            "timeout_s": settings.modbus_timeout_s,
            "offline_after_failures": settings.modbus_offline_after,
            "devices": [d.model_dump() for d in devices], "devices_from": devices_from,
            "devices_error": error, "profiles": modbus.list_profiles(settings),
            "setpoint_via": settings.setpoint_via}


@router.get("/api/modbus/config")
async def modbus_config(settings: SettingsDep) -> dict[str, Any]:
    """Modbus gateway configuration: devices, interval, profiles, what the gateway applied."""
    state = await _gateway_config(settings)
    return _modbus_public(settings, state) | state.meta("modbus")


class ModbusConfigIn(BaseModel):
    """``POST /api/modbus/config``: the fields to change; left out = unchanged."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool | None = None
    interval_s: float | None = Field(None, gt=0, le=3600, description="Default poll interval.")
    timeout_s: float | None = Field(None, gt=0, le=60)
    offline_after_failures: int | None = Field(None, ge=1, le=1000)
    devices: list[ModbusDeviceConfig] | None = Field(
        None, max_length=10_000,
        description="Replaces the device list; null = the gateway's own (environment) list.")

    @model_validator(mode="after")
    def _nulls(self) -> ModbusConfigIn:
        _no_nulls(self, {"devices"})
        return self


@router.post("/api/modbus/config", status_code=202)
async def update_modbus_config(body: ModbusConfigIn, settings: SettingsDep, producer: ProducerDep,
                               x_api_key: str | None = Header(None), wait: WaitQuery = False,
                               timeout_s: TimeoutQuery = 10.0) -> JSONResponse:
    """Change the Modbus gateway configuration (X-API-KEY); the gateway applies it."""
    _check_key(settings, x_api_key)
    state = await _readable_gateway_config(settings)
    command = state.modbus_command()
    current = command.config if command is not None else \
        modbus.gateway_config(settings, []).model_copy(update={"devices": None})
    given = body.model_fields_set
    changes = {field: getattr(body, name) for name, field in (
        ("enabled", "enabled"), ("interval_s", "interval_s"), ("timeout_s", "timeout_s"),
        ("offline_after_failures", "offline_after"), ("devices", "devices")) if name in given}
    if "devices" in changes and changes["devices"] is not None:
        changes["devices"] = tuple(changes["devices"])
    config = ModbusGatewayConfig.model_validate({**current.model_dump(), **changes})
    problems = modbus.config_problems(config, settings)
    if problems:
        raise HTTPException(422, detail=problems)
    now = datetime.now(UTC)
    envelope = new_envelope(ConfigureModbusGateway(config=config, requested_by="api",
                                                   requested_at=now), occurred_at=now,
                            source="api")
    after = await _publish_config(settings, producer, "modbus", envelope, wait, timeout_s)
    public = _modbus_public(settings, _ConfigState({"modbus": envelope}, {}))
    return _config_answer(envelope, after, public, "modbus")


@router.delete("/api/modbus/config", status_code=202)
async def reset_modbus_config(settings: SettingsDep, producer: ProducerDep,
                              x_api_key: str | None = Header(None), wait: WaitQuery = False,
                              timeout_s: TimeoutQuery = 10.0) -> JSONResponse:
    """Back to the Modbus gateway's own (environment) configuration (X-API-KEY)."""
    _check_key(settings, x_api_key)
    after = await _publish_config(settings, producer, "modbus", None, wait, timeout_s)
    return _config_answer(None, after, _modbus_public(settings, _ConfigState({}, {})),
                          "modbus")


@router.get("/api/mqtt/config")
async def mqtt_config(settings: SettingsDep) -> dict[str, Any]:
    """MQTT gateway configuration (never the password), what the gateway applied."""
    state = await _gateway_config(settings)
    return mqtt.public_config(state.mqtt_settings(settings)) | state.meta("mqtt")


class MqttTopicsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    soc: str | None = Field(None, min_length=1)
    power: str | None = Field(None, min_length=1)
    temperature: str | None = Field(None, min_length=1)


class MqttConfigIn(BaseModel):
    """``POST /api/mqtt/config``: the fields to change; left out = unchanged."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool | None = None
    broker: str | None = Field(None, min_length=1,
                               description="Broker host; null = the embedded broker.")
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = Field(None, description="null = no authentication.")
    password: SecretStr | None = Field(None, description="Write-only; \"\" = none.")
    tls: bool | None = None
    ca_file: str | None = None
    tls_insecure: bool | None = None
    prefix: str | None = Field(None, min_length=1)
    topics: MqttTopicsIn | None = None
    site: str | None = Field(None, min_length=1, description="null = the first site.")
    silent_after_s: float | None = Field(None, gt=0, le=86_400)

    @model_validator(mode="after")
    def _nulls(self) -> MqttConfigIn:
        _no_nulls(self, {"broker", "username", "ca_file", "site"})
        return self


@router.post("/api/mqtt/config", status_code=202)
async def update_mqtt_config(body: MqttConfigIn, settings: SettingsDep, producer: ProducerDep,
                             x_api_key: str | None = Header(None), wait: WaitQuery = False,
                             timeout_s: TimeoutQuery = 10.0) -> JSONResponse:
    """Change the MQTT gateway configuration (X-API-KEY); the gateway reconnects with it."""
    _check_key(settings, x_api_key)
    state = await _readable_gateway_config(settings)
    command = state.mqtt_command()
    current = command.config if command is not None else mqtt.gateway_config(settings)
    given = body.model_fields_set
    changes = {field: getattr(body, name) for name, field in (
        ("enabled", "enabled"), ("broker", "host"), ("port", "port"), ("username", "username"),
        ("tls", "tls"), ("ca_file", "ca_file"), ("tls_insecure", "tls_insecure"),
        ("prefix", "prefix"), ("site", "site"), ("silent_after_s", "silent_after_s"))
        if name in given}
    if body.topics is not None:
        changes |= {f"topic_{name if name != 'temperature' else 'temp'}": value
                    for name, value in body.topics.model_dump(exclude_none=True).items()}
    config = MqttGatewayConfig.model_validate({**current.model_dump(), **changes})
    password = body.password.get_secret_value() if body.password is not None else None
    effective = mqtt.with_config(state.mqtt_settings(settings), config, password)
    try:
        mqtt.tls_context(effective)
    except (OSError, ssl.SSLError) as exc:
        raise HTTPException(422, detail=f"TLS settings: {exc}") from None
    now = datetime.now(UTC)
    envelope = new_envelope(ConfigureMqttGateway(config=config, password=password,
                                                 requested_by="api", requested_at=now),
                            occurred_at=now, source="api")
    after = await _publish_config(settings, producer, "mqtt", envelope, wait, timeout_s)
    return _config_answer(envelope, after, mqtt.public_config(effective), "mqtt")


@router.delete("/api/mqtt/config", status_code=202)
async def reset_mqtt_config(settings: SettingsDep, producer: ProducerDep,
                            x_api_key: str | None = Header(None), wait: WaitQuery = False,
                            timeout_s: TimeoutQuery = 10.0) -> JSONResponse:
    """Back to the MQTT gateway's own (environment) configuration (X-API-KEY)."""
    _check_key(settings, x_api_key)
    after = await _publish_config(settings, producer, "mqtt", None, wait, timeout_s)
    return _config_answer(None, after, mqtt.public_config(settings), "mqtt")
