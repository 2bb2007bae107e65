"""Modbus register maps as data: decode a device's registers into quantities and encode back.

A profile (loaded from a YAML file by the gateway) names, per quantity, where the value lives
and how it is scaled: ``address`` (or ``model`` + ``offset`` for SunSpec, resolved against the
device's model chain), ``type`` (uint16, int16, uint32, int32, float32), ``scale`` or
``sf_offset`` (a SunSpec scale-factor register: value * 10**sf) and the device ``unit``
(normalised to the canonical unit by `units.normalise`). SunSpec "not implemented" values
(0xFFFF, 0x8000, ...) decode to None.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from domain.telemetry.units import normalise

TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "sunssf": 1}
NOT_IMPLEMENTED = {"uint16": 0xFFFF, "int16": 0x8000, "uint32": 0xFFFFFFFF,
                   "int32": 0x80000000, "sunssf": 0x8000}


class ProfileError(ValueError):
    """A profile file that does not describe a usable register map."""


@dataclass(frozen=True)
class Point:
    name: str
    type: str = "uint16"
    address: int | None = None
    model: int | None = None
    offset: int | None = None
    scale: float = 1.0
    sf_offset: int | None = None
    sf_address: int | None = None
    unit: str | None = None
    percent_of: str | None = None

    @property
    def count(self) -> int:
        return TYPES[self.type]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    points: Mapping[str, Point] = field(default_factory=dict)
    aux: Mapping[str, Point] = field(default_factory=dict)
    setpoint: Point | None = None
    sunspec_bases: tuple[int, ...] = ()
    models: tuple[tuple[int, int], ...] = ()

    @property
    def is_sunspec(self) -> bool:
        return bool(self.sunspec_bases)

    def all_points(self) -> list[Point]:
        return [*self.points.values(), *self.aux.values()]


def _point(name: str, raw: Mapping[str, Any]) -> Point:
    allowed = set(Point.__dataclass_fields__) - {"name"}
    unknown = set(raw) - allowed
    if unknown:
        raise ProfileError(f"point {name}: unknown key(s) {sorted(unknown)}")
    p = Point(name=name, **raw)
    if p.type not in TYPES:
        raise ProfileError(f"point {name}: unknown type {p.type!r}; known {sorted(TYPES)}")
    if p.address is None and (p.model is None or p.offset is None):
        raise ProfileError(f"point {name}: needs address, or model and offset")
    return p


def profile_from_dict(raw: Mapping[str, Any]) -> Profile:
    """Build and check a profile from its parsed YAML."""
    if "name" not in raw or "points" not in raw:
        raise ProfileError("a profile needs name and points")
    sunspec = raw.get("sunspec") or {}
    setpoint = raw.get("setpoint")
    return Profile(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        points={k: _point(k, v) for k, v in raw["points"].items()},
        aux={k: _point(k, v) for k, v in (raw.get("aux") or {}).items()},
        setpoint=_point("setpoint", setpoint) if setpoint else None,
        sunspec_bases=tuple(sunspec.get("base_addresses", ())),
        models=tuple((int(m["id"]), int(m["length"])) for m in sunspec.get("models", ())),
    )


def resolve(profile: Profile, model_starts: Mapping[int, int]) -> Profile:
    """Absolute addresses for SunSpec points, given the start address (of the ID register) of
    each model found on the device. Raises ProfileError when a model is missing."""

    def fix(p: Point) -> Point:
        if p.model is None or p.offset is None:
            return p
        if p.model not in model_starts:
            raise ProfileError(f"device has no SunSpec model {p.model} (needed by {p.name})")
        start = model_starts[p.model]
        return replace(p, address=start + p.offset,
                       sf_address=None if p.sf_offset is None else start + p.sf_offset)

    return replace(profile, points={k: fix(p) for k, p in profile.points.items()},
                   aux={k: fix(p) for k, p in profile.aux.items()},
                   setpoint=fix(profile.setpoint) if profile.setpoint else None)


def read_blocks(profile: Profile, max_count: int = 125) -> list[tuple[int, int]]:
    """(start, count) blocks covering every register the profile reads, merged when close."""
    addrs: set[int] = set()
    points = profile.all_points() + ([profile.setpoint] if profile.setpoint else [])
    for p in points:
        assert p.address is not None, "resolve() the profile first"
        addrs.update(range(p.address, p.address + p.count))
        if p.sf_address is not None:
            addrs.add(p.sf_address)
    blocks: list[tuple[int, int]] = []
    for a in sorted(addrs):
        if blocks and a - blocks[-1][0] < max_count and a - (blocks[-1][0] + blocks[-1][1]) < 32:
            blocks[-1] = (blocks[-1][0], a - blocks[-1][0] + 1)
        else:
            blocks.append((a, 1))
    return blocks


def _raw(regs: Sequence[int], type_: str) -> int | float:
    if type_ in ("uint16", "sunssf", "int16"):
        v = regs[0] & 0xFFFF
        return v
    v32 = ((regs[0] & 0xFFFF) << 16) | (regs[1] & 0xFFFF)
    if type_ == "float32":
        return float(struct.unpack(">f", struct.pack(">I", v32))[0])
    return v32


def _signed(value: int, type_: str) -> int:
    bits = 16 if type_ in ("int16", "sunssf") else 32
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def decode_point(p: Point, registers: Mapping[int, int]) -> float | None:
    """The value of `p` in its device unit times scale (None when not implemented)."""
    assert p.address is not None
    raw = _raw([registers[p.address + i] for i in range(p.count)], p.type)
    if isinstance(raw, float):
        return raw * p.scale
    if p.type in NOT_IMPLEMENTED and raw == NOT_IMPLEMENTED[p.type]:
        return None
    value = _signed(raw, p.type) if p.type in ("int16", "int32") else raw
    factor = p.scale
    if p.sf_address is not None:
        sf_raw = registers[p.sf_address] & 0xFFFF
        if sf_raw == NOT_IMPLEMENTED["sunssf"]:
            return None
        factor *= 10.0 ** _signed(sf_raw, "sunssf")
    return value * factor


def decode(profile: Profile, registers: Mapping[int, int]) -> dict[str, float]:
    """Quantities in canonical units from a register snapshot (address -> value)."""
    out = {}
    for name, p in profile.points.items():
        value = decode_point(p, registers)
        if value is not None:
            out[name] = normalise(name, value, p.unit)
    return out


def encode_value(p: Point, value: float, sf: int = 0) -> list[int]:
    """Registers for `value` (in the point's device unit) with scale and scale factor `sf`."""
    if p.type == "float32":
        v32 = struct.unpack(">I", struct.pack(">f", value / p.scale))[0]
        return [(v32 >> 16) & 0xFFFF, v32 & 0xFFFF]
    raw = round(value / p.scale / (10.0 ** sf))
    bits = 16 * p.count
    signed = p.type in ("int16", "int32", "sunssf")
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= raw <= high:
        raise ValueError(f"{p.name}: {value} does not fit {p.type} (raw {raw})")
    raw &= (1 << bits) - 1
    return [raw] if bits == 16 else [(raw >> 16) & 0xFFFF, raw & 0xFFFF]


_TO_DEVICE_POWER = {"w": 1e6, "kw": 1e3, "mw": 1.0}


def setpoint_value(profile: Profile, active_power_mw: float,
                   aux_values: Mapping[str, float] | None = None) -> float:
    """The setpoint in the device unit of the profile's setpoint register.

    For ``percent_of: <aux point>`` (SunSpec ``OutWRte`` as % of ``WChaMax``) the value is the
    share of that rating in percent, signed (negative = charge).
    """
    p = profile.setpoint
    if p is None:
        raise ProfileError(f"profile {profile.name} has no setpoint register")
    if p.percent_of:
        rating = (aux_values or {}).get(p.percent_of)
        if not rating:
            raise ProfileError(f"setpoint needs {p.percent_of}, which the device did not report")
        aux = profile.aux[p.percent_of]
        rating_mw = normalise("active_power_mw", rating, aux.unit)
        return active_power_mw / rating_mw * 100.0
    factor = _TO_DEVICE_POWER.get((p.unit or "MW").lower())
    if factor is None:
        raise ProfileError(f"setpoint unit {p.unit!r} is not a power unit")
    return active_power_mw * factor


def setpoint_mw(profile: Profile, device_value: float,
                aux_values: Mapping[str, float] | None = None) -> float:
    """Inverse of `setpoint_value` (the simulator reads its setpoint register with it)."""
    p = profile.setpoint
    if p is None:
        raise ProfileError(f"profile {profile.name} has no setpoint register")
    if p.percent_of:
        aux = profile.aux[p.percent_of]
        rating_mw = normalise("active_power_mw", (aux_values or {})[p.percent_of], aux.unit)
        return device_value / 100.0 * rating_mw
    return device_value / _TO_DEVICE_POWER[(p.unit or "MW").lower()]
