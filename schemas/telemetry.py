"""Telemetry and control events: readings from field devices, device availability, setpoints.

Units are in the field names. Power is positive when the battery discharges (feeds the grid)
and negative when it charges. A `TelemetryReceived` carries one sample of one device: the
quantities that device reported at `device_time` (a Modbus poll gives several at once, an MQTT
message on ``bess/soc`` gives one); quantities it did not report are null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.base import Payload, UtcDatetime
from schemas.envelope import register

TelemetrySource = Literal["modbus", "mqtt", "rest", "manual"]
"""How a reading reached us; ``manual`` is a value a user typed in (seed 002 "Manuelle Eingabe")."""

QUANTITIES: tuple[str, ...] = (
    "soc_pct", "active_power_mw", "temperature_c", "frequency_hz", "voltage_v", "soh_pct",
    "pv_power_mw", "load_power_mw",
)
"""The measured quantities of `TelemetryReceived`, in field order."""


@register
class TelemetryReceived(Payload):
    """A device reported measurements. Key: `site`.

    `device_time` is the device's own timestamp (the poll time for protocols without one, such
    as Modbus); `received_at` is when the gateway received it. A reading older than the newest
    one of the same device and quantity is kept in the history but does not replace the state.
    """

    site: str = Field(description="Site id, e.g. site-1.")
    device_id: str = Field(description="Device or sensor id, unique within the site.")
    source: TelemetrySource = Field(description="modbus, mqtt, rest or manual.")
    device_time: UtcDatetime = Field(description="Measurement time stamped by the device, UTC.")
    received_at: UtcDatetime = Field(description="When the gateway received it, UTC.")
    soc_pct: float | None = Field(default=None, ge=0, le=100, description="State of charge, %.")
    active_power_mw: float | None = Field(
        default=None, description="Active power, MW; positive = discharge, negative = charge."
    )
    temperature_c: float | None = Field(default=None, description="Temperature, degC.")
    frequency_hz: float | None = Field(default=None, ge=0, description="Grid frequency, Hz.")
    voltage_v: float | None = Field(default=None, ge=0, description="Voltage, V.")
    soh_pct: float | None = Field(default=None, ge=0, le=100, description="State of health, %.")
    pv_power_mw: float | None = Field(default=None, description="PV generation, MW.")
    load_power_mw: float | None = Field(default=None, description="Site load, MW.")

    def partition_key(self) -> str:
        return self.site

    def quantities(self) -> dict[str, float]:
        """The reported quantities (non-null fields of `QUANTITIES`)."""
        return {name: value for name in QUANTITIES
                if (value := getattr(self, name)) is not None}


@register
class DeviceOffline(Payload):
    """A device stopped answering (Modbus) or went silent (MQTT). Key: `site`."""

    site: str
    device_id: str
    source: TelemetrySource
    detected_at: UtcDatetime = Field(description="When the gateway gave up on the device, UTC.")
    last_seen: UtcDatetime | None = Field(default=None, description="Last good reading, UTC.")
    failures: int = Field(ge=0, description="Consecutive failed polls (0 for silence).")
    reason: str = Field(description="The last error, e.g. connection refused.")

    def partition_key(self) -> str:
        return self.site


@register
class DeviceOnline(Payload):
    """A device answers (again). Key: `site`."""

    site: str
    device_id: str
    source: TelemetrySource
    detected_at: UtcDatetime
    offline_since: UtcDatetime | None = Field(
        default=None, description="When it had gone offline; null on the first connection."
    )

    def partition_key(self) -> str:
        return self.site


@register
class SetpointIssued(Payload):
    """Command for a site's battery: hold this active power. Key: `site`.

    The gateway serving the site writes it to the device (a Modbus holding register of the
    device's profile, or the MQTT command topic ``<prefix>/<site>/commands``). `via` pins the
    route; null = the configured default (``BESS_SETPOINT_VIA``).
    """

    site: str
    active_power_mw: float = Field(description="Setpoint, MW; positive = discharge.")
    issued_at: UtcDatetime
    issued_by: str = Field(description="Who asked: dispatch, api, a user name.")
    via: Literal["modbus", "mqtt"] | None = None

    def partition_key(self) -> str:
        return self.site


@register
class SetpointDelivered(Payload):
    """A gateway wrote a setpoint to a device (or failed to, with the error). Key: `site`."""

    site: str
    device_id: str
    via: Literal["modbus", "mqtt"]
    setpoint_event_id: str = Field(description="event_id of the SetpointIssued.")
    active_power_mw: float
    delivered_at: UtcDatetime
    ok: bool
    error: str | None = None

    def partition_key(self) -> str:
        return self.site


# --- gateway configuration at run time (``telemetry.gateway-config.v1``, compacted) ---


class ModbusDeviceConfig(BaseModel):
    """One Modbus TCP device the gateway polls."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    site: str = Field(min_length=1, description="Site id of the readings.")
    device_id: str = Field(min_length=1, description="Device id, unique within the site.")
    host: str = Field(min_length=1, description="Host name or IP address.")
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    profile: str = Field(default="default", min_length=1,
                         description="Register map: a profile name or a YAML path.")
    interval_s: float | None = Field(default=None, gt=0,
                                     description="Poll interval, s; null = the gateway's.")


class ModbusGatewayConfig(BaseModel):
    """What the Modbus gateway polls, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(description="false: poll nothing (the process keeps running).")
    interval_s: float = Field(gt=0, description="Default poll interval, s.")
    timeout_s: float = Field(gt=0, description="Request timeout, s.")
    offline_after: int = Field(ge=1, description="Failed polls until DeviceOffline.")
    devices: tuple[ModbusDeviceConfig, ...] | None = Field(
        description="Every polled device; null = the gateway's own list (BESS_MODBUS_DEVICES, "
                    "BESS_MODBUS_HOST, --device).")


class MqttGatewayConfig(BaseModel):
    """Where the MQTT gateway connects and what it subscribes (the password travels apart)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(description="false: stay disconnected (the process keeps running).")
    host: str | None = Field(description="Broker host; null = the embedded broker (loopback).")
    port: int = Field(ge=1, le=65535)
    username: str | None = None
    tls: bool = False
    ca_file: str | None = Field(default=None, description="CA bundle path on the gateway host.")
    tls_insecure: bool = Field(default=False, description="Skip certificate verification.")
    prefix: str = Field(min_length=1, description="Per-site and discovery topic prefix.")
    topic_soc: str = Field(min_length=1)
    topic_power: str = Field(min_length=1)
    topic_temp: str = Field(min_length=1)
    site: str | None = Field(description="Site of the predecessor topics; null = first site.")
    silent_after_s: float = Field(gt=0, description="Silence until DeviceOffline, s.")


@register
class ConfigureModbusGateway(Payload):
    """Command: the Modbus gateway's complete configuration from now on. Key: ``modbus``.

    The latest one on the compacted topic overrides the gateway's environment (a tombstone
    reverts to it); the gateway restarts the pollers of changed devices and reports
    `GatewayConfigApplied`.
    """

    kind = "command"

    config: ModbusGatewayConfig
    requested_by: str = Field(description="Who changed it: api, a user name.")
    requested_at: UtcDatetime

    def partition_key(self) -> str:
        return "modbus"


@register
class ConfigureMqttGateway(Payload):
    """Command: the MQTT gateway's complete configuration from now on. Key: ``mqtt``.

    The latest one on the compacted topic overrides the gateway's environment (a tombstone
    reverts to it); the gateway reconnects with it and reports `GatewayConfigApplied`.
    `password` null keeps the password the gateway has (from its environment or an earlier
    command), ``""`` removes it; the topic thus can hold a broker credential: restrict it
    with ACLs like the broker itself.
    """

    kind = "command"

    config: MqttGatewayConfig
    password: str | None = Field(default=None, repr=False,
                                 description="null = keep the current one; empty = none.")
    requested_by: str = Field(description="Who changed it: api, a user name.")
    requested_at: UtcDatetime

    def partition_key(self) -> str:
        return "mqtt"


@register
class GatewayConfigApplied(Payload):
    """A gateway runs with this configuration now: after a command (`config_event_id`), or on
    start with its environment's (null). `ok` false: the command was refused (`error`) and the
    gateway keeps its previous configuration. Key: ``<gateway>.applied``."""

    gateway: Literal["modbus", "mqtt"]
    instance: str = Field(description="Which gateway process (its client id).")
    config_event_id: str | None = Field(description="event_id of the command; null = start.")
    applied_at: UtcDatetime
    ok: bool
    error: str | None = None
    modbus: ModbusGatewayConfig | None = Field(default=None, description="In effect (modbus).")
    mqtt: MqttGatewayConfig | None = Field(default=None, description="In effect (mqtt).")
    password_set: bool | None = Field(default=None, description="MQTT: a password is in use.")

    def partition_key(self) -> str:
        return f"{self.gateway}.applied"
