"""Telemetry and control events: readings from field devices, device availability, setpoints.

Units are in the field names. Power is positive when the battery discharges (feeds the grid)
and negative when it charges. A `TelemetryReceived` carries one sample of one device: the
quantities that device reported at `device_time` (a Modbus poll gives several at once, an MQTT
message on ``bess/soc`` gives one); quantities it did not report are null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
