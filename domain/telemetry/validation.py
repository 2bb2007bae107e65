"""Range checks of readings: physically impossible values are rejected with a reason."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


DEFAULT_LIMITS: dict[str, Range] = {
    "soc_pct": Range(0.0, 100.0),
    "soh_pct": Range(0.0, 100.0),
    "active_power_mw": Range(-1000.0, 1000.0),
    "pv_power_mw": Range(-1.0, 1000.0),
    "load_power_mw": Range(-1000.0, 1000.0),
    "temperature_c": Range(-40.0, 120.0),
    "frequency_hz": Range(45.0, 65.0),
    "voltage_v": Range(0.0, 1_000_000.0),
}


@dataclass(frozen=True)
class Limits:
    """Valid range per quantity (canonical units); quantities not listed are not checked."""

    ranges: Mapping[str, Range] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def problems(self, values: Mapping[str, float]) -> list[str]:
        """Why `values` are invalid; empty when all are in range and finite."""
        out = []
        for name, value in values.items():
            if not math.isfinite(value):
                out.append(f"{name}={value} is not a finite number")
                continue
            allowed = self.ranges.get(name)
            if allowed is not None and value not in allowed:
                out.append(f"{name}={value:g} out of range [{allowed.low:g}, {allowed.high:g}]")
        return out
