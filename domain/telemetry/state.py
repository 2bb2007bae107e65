"""The telemetry state of a device, folded from its readings, and the verdict on each reading.

A reading is applied per quantity: a value replaces the stored one only when its device time is
newer. An exact repeat (same device time and values) is a duplicate; a reading older than the
stored state of every quantity it carries is out of order. Both stay in the history (the event
log), neither changes the state. Time is a parameter: staleness takes `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from schemas.telemetry import TelemetryReceived

Verdict = Literal["applied", "partly_applied", "duplicate", "out_of_order"]

AUTOMATIC = "automatic telemetry"
MANUAL = "manual input"


def source_label(source: str) -> str:
    """"automatic telemetry" for Modbus/MQTT/REST, "manual input" for manual (seed 002)."""
    return MANUAL if source == "manual" else AUTOMATIC


@dataclass(frozen=True)
class Measurement:
    value: float
    device_time: datetime
    source: str
    device_id: str

    @property
    def source_label(self) -> str:
        return source_label(self.source)


Fingerprint = tuple[datetime, tuple[tuple[str, float], ...]]


def fingerprint(reading: TelemetryReceived) -> Fingerprint:
    return reading.device_time, tuple(sorted(reading.quantities().items()))


@dataclass(frozen=True)
class DeviceState:
    """Latest measurement per quantity of one device, plus recent fingerprints for dedup."""

    values: Mapping[str, Measurement] = field(default_factory=dict)
    recent: tuple[Fingerprint, ...] = ()
    window: int = 256

    @property
    def last_time(self) -> datetime | None:
        return max((m.device_time for m in self.values.values()), default=None)


def classify(state: DeviceState, reading: TelemetryReceived) -> Verdict:
    """What applying `reading` to `state` would do."""
    if fingerprint(reading) in state.recent:
        return "duplicate"
    quantities = reading.quantities()
    newer = [q for q in quantities
             if q not in state.values or reading.device_time > state.values[q].device_time]
    if not newer:
        return "out_of_order"
    return "applied" if len(newer) == len(quantities) else "partly_applied"


def evolve(state: DeviceState, reading: TelemetryReceived) -> DeviceState:
    """`state` after `reading`: newer quantities replace older ones, nothing else changes."""
    if fingerprint(reading) in state.recent:
        return state
    values = dict(state.values)
    for name, value in reading.quantities().items():
        current = values.get(name)
        if current is None or reading.device_time > current.device_time:
            values[name] = Measurement(value, reading.device_time, reading.source,
                                       reading.device_id)
    recent = (*state.recent, fingerprint(reading))[-state.window:]
    return replace(state, values=values, recent=recent)


def fold(readings: Iterable[TelemetryReceived]) -> dict[tuple[str, str], DeviceState]:
    """State per (site, device_id) after `readings` in the given order."""
    states: dict[tuple[str, str], DeviceState] = {}
    for r in readings:
        key = (r.site, r.device_id)
        states[key] = evolve(states.get(key, DeviceState()), r)
    return states


def is_stale(last: datetime | None, now: datetime, max_age_s: float) -> bool:
    """True when nothing arrived within `max_age_s` before `now` (or never)."""
    return last is None or (now - last).total_seconds() > max_age_s


class Tracker:
    """The verdicts of `classify`/`evolve` for many devices, mutable and O(1) per reading (what
    a gateway uses at thousands of readings per second). Remembers per device the newest device
    time per quantity and the last `window` fingerprints."""

    def __init__(self, window: int = 256):
        self.window = window
        self.last: dict[tuple[str, str], dict[str, datetime]] = {}
        self.recent: dict[tuple[str, str], dict[Fingerprint, None]] = {}

    def observe(self, reading: TelemetryReceived,
                quantities: Mapping[str, float] | None = None) -> Verdict:
        values = reading.quantities() if quantities is None else quantities
        key = (reading.site, reading.device_id)
        fp = (reading.device_time, tuple(sorted(values.items())))
        seen = self.recent.setdefault(key, {})
        if fp in seen:
            return "duplicate"
        seen[fp] = None
        if len(seen) > self.window:
            del seen[next(iter(seen))]
        last = self.last.setdefault(key, {})
        newer = 0
        for name in values:
            t = last.get(name)
            if t is None or reading.device_time > t:
                last[name] = reading.device_time
                newer += 1
        if newer == 0:
            return "out_of_order"
        return "applied" if newer == len(values) else "partly_applied"
