"""Gateway configuration at run time without brokers: settings <-> the command schemas, the
checks, and what the gateways do with a command (take it over, or refuse and report)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gateways.modbus.gateway import ModbusGateway
from gateways.mqtt.gateway import MqttGateway
from infra import modbus, mqtt
from infra.modbus import ModbusDevice
from infra.settings import Settings
from schemas.envelope import new_envelope
from schemas.telemetry import (
    ConfigureModbusGateway,
    ConfigureMqttGateway,
    GatewayConfigApplied,
    ModbusDeviceConfig,
    ModbusGatewayConfig,
)

NOW = datetime(2025, 1, 26, tzinfo=UTC)


def _settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, kafka_bootstrap="127.0.0.1:1", **kw)  # type: ignore[call-arg]


class Reports:
    """Stands in for the TelemetryPublisher: collects the events."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def event(self, topic: str, payload: Any, occurred_at: Any = None) -> None:
        self.events.append(payload)

    async def flush(self) -> None:
        pass


def test_mqtt_settings_round_trip_and_password_rules() -> None:
    s = _settings(mqtt_username="u", mqtt_password=SecretStr("old"), mqtt_prefix="p")
    config = mqtt.gateway_config(s).model_copy(update={"port": 1884, "prefix": "q",
                                                       "ca_file": "/etc/ca.pem"})
    kept = mqtt.with_config(s, config)
    assert mqtt.gateway_config(kept) == config
    assert kept.mqtt_password == SecretStr("old") and kept.mqtt_ca_file == Path("/etc/ca.pem")
    assert mqtt.with_config(s, config, "new").mqtt_password == SecretStr("new")
    assert mqtt.with_config(s, config, "").mqtt_password is None
    public = mqtt.public_config(mqtt.with_config(s, config, "new"))
    assert "new" not in str(public) and public["password_set"] is True
    assert public["prefix"] == "q" and public["topics"]["site_telemetry"] == "q/<site>/telemetry"


def test_the_password_never_shows_in_the_command_repr() -> None:
    command = ConfigureMqttGateway(config=mqtt.gateway_config(_settings()), password="s3cret",
                                   requested_by="api", requested_at=NOW)
    assert "s3cret" not in repr(command) and "s3cret" not in str(command)


def test_modbus_config_devices_and_problems() -> None:
    s = _settings()
    own = [ModbusDevice(site="s", device_id="env", host="h", interval_s=3.0)]
    config = ModbusGatewayConfig(enabled=True, interval_s=0.5, timeout_s=2, offline_after=4,
                                 devices=None)
    settings, devices = modbus.with_config(s, config, own)
    assert devices == own and settings.modbus_interval_s == 0.5
    assert settings.modbus_offline_after == 4
    config = config.model_copy(update={"devices": (
        ModbusDeviceConfig(site="s", device_id="a", host="10.0.0.1"),
        ModbusDeviceConfig(site="s", device_id="b", host="10.0.0.2", interval_s=2.0,
                           profile="sunspec"))})
    _, devices = modbus.with_config(s, config, own)
    assert [(d.device_id, d.interval_s, d.profile) for d in devices] == \
        [("a", 0.5, "default"), ("b", 2.0, "sunspec")]
    assert modbus.config_problems(config, s) == []
    assert modbus.gateway_config(settings, devices).devices[0].interval_s == 0.5
    bad = config.model_copy(update={"devices": (
        ModbusDeviceConfig(site="s", device_id="a", host="h", profile="nope"),
        ModbusDeviceConfig(site="s", device_id="a", host="h2"))})
    problems = modbus.config_problems(bad, s)
    assert problems[0].startswith("devices.0.profile: no Modbus profile 'nope'")
    assert problems[1] == "devices.1: device 'a' of site 's' twice"


async def test_mqtt_gateway_takes_over_a_command_and_refuses_a_broken_one(tmp_path) -> None:
    reports = Reports()
    gateway = MqttGateway(_settings(mqtt_prefix="a"), reports, client_id="gw")  # type: ignore[arg-type]
    config = mqtt.gateway_config(gateway.settings)
    broken = new_envelope(ConfigureMqttGateway(
        config=config.model_copy(update={"tls": True, "ca_file": str(tmp_path / "none.pem")}),
        requested_by="t", requested_at=NOW), occurred_at=NOW, source="t")
    await gateway.apply_config(broken)
    refused = reports.events[-1]
    assert isinstance(refused, GatewayConfigApplied) and refused.ok is False
    assert "TLS settings" in (refused.error or "") and refused.mqtt == config
    assert gateway.settings.mqtt_tls is False

    good = new_envelope(ConfigureMqttGateway(
        config=config.model_copy(update={"prefix": "b", "port": 1884}), password="pw",
        requested_by="t", requested_at=NOW), occurred_at=NOW, source="t")
    await gateway.apply_config(good)
    assert gateway.settings.mqtt_port == 1884 and gateway.settings.mqtt_password == SecretStr("pw")
    assert gateway._next_config is not None and "b/+/telemetry" in \
        gateway._next_config.subscriptions()
    assert gateway._restart.is_set() and gateway._report == str(good.event_id)
    await gateway.apply_config(None)  # tombstone: the environment's settings again
    assert gateway.settings == gateway.own_settings and gateway._report is None


async def test_modbus_gateway_takes_over_a_command_before_it_runs() -> None:
    reports = Reports()
    own = [ModbusDevice(site="s", device_id="env", host="h")]
    gateway = ModbusGateway(_settings(), own, reports)  # type: ignore[arg-type]
    config = ModbusGatewayConfig(enabled=True, interval_s=2, timeout_s=1, offline_after=3,
                                 devices=(ModbusDeviceConfig(site="t", device_id="x", host="y",
                                                             profile="nope"),))
    command = new_envelope(ConfigureModbusGateway(config=config, requested_by="t",
                                                  requested_at=NOW), occurred_at=NOW, source="t")
    await gateway.apply_config(command)
    assert reports.events[-1].ok is False and "no Modbus profile" in reports.events[-1].error
    assert gateway.devices == own
    command = new_envelope(ConfigureModbusGateway(
        config=config.model_copy(update={"devices": (ModbusDeviceConfig(
            site="t", device_id="x", host="y"),)}), requested_by="t", requested_at=NOW),
        occurred_at=NOW, source="t")
    await gateway.apply_config(command)
    assert [d.device_id for d in gateway.devices] == ["x"] and gateway.devices[0].interval_s == 2
    assert gateway.config_event_id == str(command.event_id)
    assert gateway.pollers == {}  # not running yet: `run` starts with this configuration
    await gateway.apply_config(None)
    assert gateway.devices == own and gateway.config_event_id is None


@pytest.mark.parametrize("body", [{"port": 0}, {"prefix": ""}, {"silent_after_s": 0}])
def test_mqtt_config_schema_refuses_nonsense(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mqtt.gateway_config(_settings()).model_validate(
            {**mqtt.gateway_config(_settings()).model_dump(), **body})
