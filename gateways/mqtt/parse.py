"""MQTT messages -> `TelemetryReceived`. Three topic families (seed 002, seed 004 3.3.2):

- the predecessor's ``bess/soc``, ``bess/power``, ``bess/temperature`` (configurable), payload
  ``{"value": 75.5, "timestamp": "2025-01-25T20:30:00Z", "unit": "%"}``; site = BESS_MQTT_SITE,
  device ``<site>-bess``;
- per site ``<prefix>/<site>/telemetry``: one JSON object with several quantities, by canonical
  name (``soc_pct``) or the REST names (``soc_percent``), optional ``device_id``,
  ``timestamp`` and ``units`` (``{"active_power_mw": "kW"}``);
- discovery ``<prefix>/sensors/<device_id>/<type>``: a sensor announces itself by publishing;
  payload as the predecessor's, optional ``site``.

`ParseError` carries the reason that goes to the dead-letter topic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.telemetry.units import UnitError, normalise
from schemas.telemetry import QUANTITIES, TelemetryReceived

ALIASES: dict[str, str] = {
    "soc": "soc_pct", "soc_percent": "soc_pct", "power": "active_power_mw",
    "active_power": "active_power_mw", "temperature": "temperature_c", "temp": "temperature_c",
    "frequency": "frequency_hz", "voltage": "voltage_v", "soh": "soh_pct",
    "soh_percent": "soh_pct", "pv_power": "pv_power_mw", "pv": "pv_power_mw",
    "load_power": "load_power_mw", "load": "load_power_mw",
    **{q: q for q in QUANTITIES},
}


class ParseError(ValueError):
    """A message that is not a valid reading; the message is the dead-letter reason."""


@dataclass(frozen=True)
class TopicConfig:
    prefix: str
    legacy: Mapping[str, str]  # topic -> quantity
    default_site: str
    sensor_sites: Mapping[str, str]

    def subscriptions(self) -> list[str]:
        return [*self.legacy, f"{self.prefix}/+/telemetry", f"{self.prefix}/sensors/+/+"]

    def rest(self, topic: str) -> list[str]:
        """The levels of `topic` after the prefix's (none when it is not under the prefix)."""
        head = self.prefix + "/"
        return topic[len(head):].split("/") if topic.startswith(head) else []


def parse_time(raw: Any, fallback: datetime) -> datetime:
    if raw is None:
        return fallback
    if isinstance(raw, bool):
        raise ParseError(f"timestamp {raw!r} is not a time")
    if isinstance(raw, int | float):
        seconds = raw / 1000.0 if raw > 1e11 else float(raw)
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(raw, str):
        try:
            t = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ParseError(f"timestamp {raw!r} is not ISO 8601") from None
        if t.tzinfo is None:
            raise ParseError(f"timestamp {raw!r} has no UTC offset")
        return t.astimezone(UTC)
    raise ParseError(f"timestamp {raw!r} is not a time")


def _number(name: str, raw: Any) -> float:
    if type(raw) is float:  # the common case first (bool is not float)
        value: float = raw
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ParseError(f"{name} must be a number, got {raw!r}")
    else:
        value = float(raw)
    if not math.isfinite(value):
        raise ParseError(f"{name} is not finite")
    return value


def _load(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc}") from None


def _normalise(quantity: str, value: float, unit: Any) -> float:
    if unit is None:
        return value
    if not isinstance(unit, str):
        raise ParseError(f"unit {unit!r} is not a string")
    try:
        return normalise(quantity, value, unit)
    except UnitError as exc:
        raise ParseError(str(exc)) from None


def _value(quantity: str, body: Any) -> float:
    if isinstance(body, int | float) and not isinstance(body, bool):
        return _number("value", body)
    if not isinstance(body, dict):
        raise ParseError("payload must be a JSON object with value (or a number)")
    if "value" not in body:
        raise ParseError("payload misses value")
    return _normalise(quantity, _number("value", body["value"]), body.get("unit"))


_NOT_QUANTITIES = frozenset(("device_id", "timestamp", "units", "site"))


def parse(config: TopicConfig, topic: str, payload: bytes,
          received_at: datetime) -> TelemetryReceived:
    """The reading in one MQTT message. Raises ParseError."""
    body = _load(payload)
    is_object = isinstance(body, dict)
    ts = body.get("timestamp") if is_object else None
    quantity = config.legacy.get(topic)
    if quantity is not None:
        site = config.default_site
        return _reading(site, f"{site}-bess", parse_time(ts, received_at), received_at,
                        {quantity: _value(quantity, body)})
    rest = config.rest(topic)
    if len(rest) == 2 and rest[1] == "telemetry":
        site = rest[0]
        if not is_object:
            raise ParseError("site telemetry must be a JSON object")
        units = body.get("units") or {}
        if not isinstance(units, dict):
            raise ParseError("units must be an object")
        values: dict[str, float] = {}
        unknown = []
        for key, raw in body.items():
            quantity = ALIASES.get(key)  # no alias is one of _NOT_QUANTITIES
            if quantity is None:
                if key not in _NOT_QUANTITIES:
                    unknown.append(key)
                continue
            # orjson makes no NaN or infinity: a float is a finite number already
            value = raw if type(raw) is float else _number(key, raw)
            values[quantity] = _normalise(quantity, value, units.get(key) or
                                          units.get(quantity)) if units else value
        if unknown:
            raise ParseError(f"unknown field(s) {', '.join(sorted(unknown))}")
        if not values:
            raise ParseError("no quantities in site telemetry")
        device_id = str(body.get("device_id") or f"{site}-mqtt")
        return _reading(site, device_id, parse_time(ts, received_at), received_at, values)
    if len(rest) == 3 and rest[0] == "sensors":
        device_id, kind = rest[1], rest[2]
        quantity = ALIASES.get(kind)
        if quantity is None:
            raise ParseError(f"unknown sensor type {kind!r}; known: {', '.join(sorted(ALIASES))}")
        site = (body.get("site") if is_object else None) \
            or config.sensor_sites.get(device_id) or config.default_site
        return _reading(str(site), device_id, parse_time(ts, received_at), received_at,
                        {quantity: _value(quantity, body)})
    raise ParseError(f"topic {topic!r} is not a telemetry topic")


def _reading(site: str, device_id: str, device_time: datetime, received_at: datetime,
             values: dict[str, float]) -> TelemetryReceived:
    try:
        return TelemetryReceived(site=site, device_id=device_id, source="mqtt",
                                 device_time=device_time, received_at=received_at, **values)
    except ValueError as exc:  # pydantic ValidationError (out of the schema's range)
        raise ParseError(f"invalid reading: {str(exc).splitlines()[0:3]}") from None
