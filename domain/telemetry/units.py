"""Unit normalisation: whatever unit a device reports in, to the canonical unit of the quantity.

Canonical units are the ones in the field names of `TelemetryReceived`: %, MW, degC, Hz, V.
"""

from __future__ import annotations

from collections.abc import Callable


class UnitError(ValueError):
    """A unit that does not fit the quantity (or is unknown)."""


def _scale(factor: float) -> Callable[[float], float]:
    return lambda v: v * factor


_POWER: dict[str, Callable[[float], float]] = {
    "w": _scale(1e-6), "kw": _scale(1e-3), "mw": _scale(1.0), "gw": _scale(1e3),
}
_PERCENT: dict[str, Callable[[float], float]] = {
    "%": _scale(1.0), "pct": _scale(1.0), "percent": _scale(1.0),
    "ratio": _scale(100.0), "fraction": _scale(100.0),
}
_TEMPERATURE: dict[str, Callable[[float], float]] = {
    "°c": _scale(1.0), "degc": _scale(1.0), "c": _scale(1.0), "celsius": _scale(1.0),
    "k": lambda v: v - 273.15, "°f": lambda v: (v - 32.0) * 5.0 / 9.0,
    "degf": lambda v: (v - 32.0) * 5.0 / 9.0, "f": lambda v: (v - 32.0) * 5.0 / 9.0,
}
_FREQUENCY: dict[str, Callable[[float], float]] = {
    "hz": _scale(1.0), "mhz": _scale(1e-3), "khz": _scale(1e3),
}
_VOLTAGE: dict[str, Callable[[float], float]] = {"v": _scale(1.0), "kv": _scale(1e3),
                                                 "mv": _scale(1e-3)}

UNITS: dict[str, dict[str, Callable[[float], float]]] = {
    "soc_pct": _PERCENT, "soh_pct": _PERCENT,
    "active_power_mw": _POWER, "pv_power_mw": _POWER, "load_power_mw": _POWER,
    "temperature_c": _TEMPERATURE, "frequency_hz": _FREQUENCY, "voltage_v": _VOLTAGE,
}
"""Per quantity: accepted unit (lower case) -> conversion to the canonical unit."""

CANONICAL: dict[str, str] = {
    "soc_pct": "%", "soh_pct": "%", "active_power_mw": "MW", "pv_power_mw": "MW",
    "load_power_mw": "MW", "temperature_c": "°C", "frequency_hz": "Hz", "voltage_v": "V",
}


def normalise(quantity: str, value: float, unit: str | None) -> float:
    """`value` in `unit` converted to the canonical unit of `quantity`.

    `unit` None or empty means "already canonical". Raises `UnitError` for an unknown quantity
    or a unit that does not fit it (``"kW"`` for a temperature).
    """
    table = UNITS.get(quantity)
    if table is None:
        raise UnitError(f"unknown quantity {quantity!r}")
    if unit is None or not unit.strip():
        return float(value)
    key = unit.strip().lower().replace(" ", "")
    convert = table.get(key)
    if convert is None:
        raise UnitError(f"unit {unit!r} does not fit {quantity} (expected e.g. "
                        f"{CANONICAL[quantity]!r})")
    return convert(float(value))


def denormalise(quantity: str, value: float, unit: str | None) -> float:
    """Inverse of `normalise`: a canonical value expressed in `unit` (all conversions are
    affine, so the inverse follows from two points)."""
    offset = normalise(quantity, 0.0, unit)
    slope = normalise(quantity, 1.0, unit) - offset
    return (value - offset) / slope
