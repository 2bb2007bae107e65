"""Several sensors of one kind per site, aggregated into one value (seed 004 `SensorAggregator`).

Methods: mean, weighted_mean (weights per sensor, e.g. by position), max, min, sum, median.
Outliers are rejected first by the modified z-score (median absolute deviation, Iglewicz and
Hoaglin): with at least three sensors, a value whose score exceeds the threshold is ignored.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

Method = Literal["mean", "weighted_mean", "max", "min", "sum", "median"]
METHODS: tuple[str, ...] = get_args(Method)

DEFAULT_METHODS: dict[str, Method] = {
    "soc_pct": "mean", "soh_pct": "mean", "temperature_c": "weighted_mean",
    "active_power_mw": "sum", "pv_power_mw": "sum", "load_power_mw": "sum",
    "frequency_hz": "median", "voltage_v": "mean",
}
"""Per quantity: powers of several devices add up, temperatures are a weighted mean."""


@dataclass(frozen=True)
class SensorValue:
    sensor_id: str
    value: float
    weight: float = 1.0


def reject_outliers(values: Sequence[SensorValue], threshold: float = 3.5) -> list[SensorValue]:
    """`values` without outliers (modified z-score > `threshold`); unchanged below 3 values."""
    if len(values) < 3:
        return list(values)
    med = statistics.median(v.value for v in values)
    mad = statistics.median(abs(v.value - med) for v in values)
    if mad == 0:
        # more than half agree exactly: everything else is an outlier
        return [v for v in values if v.value == med]
    return [v for v in values if 0.6745 * abs(v.value - med) / mad <= threshold]


def aggregate(values: Sequence[SensorValue], method: Method = "mean",
              outlier_threshold: float | None = 3.5) -> float | None:
    """One value from several sensors; None without values."""
    if outlier_threshold is not None:
        values = reject_outliers(values, outlier_threshold)
    if not values:
        return None
    xs = [v.value for v in values]
    if method == "mean":
        return statistics.fmean(xs)
    if method == "weighted_mean":
        total = sum(v.weight for v in values)
        if total <= 0:
            return statistics.fmean(xs)
        return sum(v.value * v.weight for v in values) / total
    if method == "max":
        return max(xs)
    if method == "min":
        return min(xs)
    if method == "sum":
        return sum(xs)
    if method == "median":
        return statistics.median(xs)
    raise ValueError(f"unknown aggregation method {method!r}")


def parse_mapping(text: str) -> dict[str, str]:
    """``"a=1, b=2"`` -> ``{"a": "1", "b": "2"}`` (config strings of methods and weights)."""
    out = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item.strip()!r}")
        out[key.strip()] = value.strip()
    return out


def methods_from(text: str) -> dict[str, Method]:
    """Aggregation method per quantity: the defaults overridden by ``"quantity=method,..."``."""
    methods = dict(DEFAULT_METHODS)
    for quantity, method in parse_mapping(text).items():
        if method not in METHODS:
            raise ValueError(f"unknown aggregation method {method!r} for {quantity}; "
                             f"known: {', '.join(METHODS)}")
        methods[quantity] = method  # type: ignore[assignment]
    return methods


def weights_from(text: str) -> Mapping[str, float]:
    """Sensor weights from ``"sensor_id=weight,..."``."""
    return {k: float(v) for k, v in parse_mapping(text).items()}
