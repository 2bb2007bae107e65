"""Modbus TCP access shared by the gateway, the API's connection test and the benchmark:
register-map profiles (YAML files in ``gateways/modbus/profiles/``) and a device reader over
the pymodbus async client that discovers SunSpec model chains, reads a profile's registers in
as few requests as possible and writes setpoints."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from domain.telemetry.registers import (
    Profile,
    ProfileError,
    decode,
    decode_point,
    encode_value,
    profile_from_dict,
    read_blocks,
    resolve,
    setpoint_value,
)
from infra.settings import PROJECT_ROOT, Settings
from schemas.telemetry import ModbusDeviceConfig, ModbusGatewayConfig

PROFILE_DIR = PROJECT_ROOT / "gateways" / "modbus" / "profiles"
SUNS = (0x5375, 0x6E53)  # "SunS"


class ModbusDeviceError(Exception):
    """A device did not answer or answered with an exception; `retriable` says whether a later
    attempt may succeed (connection problems) or not (a bad profile)."""

    def __init__(self, message: str, retriable: bool = True):
        super().__init__(message)
        self.retriable = retriable


class ModbusDevice(BaseModel):
    """One polled device (``BESS_MODBUS_DEVICES`` entries, or the predecessor's variables)."""

    site: str = Field(min_length=1)
    device_id: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    profile: str = Field(default="default", min_length=1)
    interval_s: float = Field(default=1.0, gt=0)


def profile_dirs(settings: Settings | None = None) -> list[Path]:
    extra = settings.modbus_profile_dir if settings is not None else None
    return [d for d in (extra, PROFILE_DIR) if d is not None]


def load_profile(name_or_path: str, settings: Settings | None = None) -> Profile:
    """A profile by name (a ``<name>.yaml`` in the profile directories) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        for d in profile_dirs(settings):
            if (d / f"{name_or_path}.yaml").exists():
                path = d / f"{name_or_path}.yaml"
                break
    if not path.exists():
        raise ProfileError(f"no Modbus profile {name_or_path!r} "
                           f"(looked in {', '.join(map(str, profile_dirs(settings)))})")
    return profile_from_dict(yaml.safe_load(path.read_text()))


def list_profiles(settings: Settings | None = None) -> list[str]:
    return sorted({p.stem for d in profile_dirs(settings) if d.exists() for p in d.glob("*.yaml")})


def devices_from_settings(settings: Settings) -> list[ModbusDevice]:
    """``BESS_MODBUS_DEVICES`` (JSON list) plus the predecessor's single device
    (``BESS_MODBUS_HOST``/``PORT``/``UNIT_ID``) when set."""
    devices = []
    if settings.modbus_devices:
        for raw in json.loads(settings.modbus_devices):
            raw.setdefault("interval_s", settings.modbus_interval_s)
            devices.append(ModbusDevice(**raw))
    if settings.modbus_host:
        site = settings.modbus_site or settings.site_ids[0]
        devices.append(ModbusDevice(
            site=site, device_id=f"{site}-modbus", host=settings.modbus_host,
            port=settings.modbus_port, unit_id=settings.modbus_unit_id,
            profile=settings.modbus_profile, interval_s=settings.modbus_interval_s))
    return devices


def gateway_config(settings: Settings, devices: list[ModbusDevice]) -> ModbusGatewayConfig:
    """`settings` and `devices` as the `ConfigureModbusGateway` schema has them."""
    return ModbusGatewayConfig(
        enabled=settings.modbus_enabled, interval_s=settings.modbus_interval_s,
        timeout_s=settings.modbus_timeout_s, offline_after=settings.modbus_offline_after,
        devices=tuple(ModbusDeviceConfig(**d.model_dump()) for d in devices))


def with_config(settings: Settings, config: ModbusGatewayConfig,
                own_devices: list[ModbusDevice]) -> tuple[Settings, list[ModbusDevice]]:
    """`settings` with the Modbus part replaced by `config`, and the devices to poll:
    `config`'s (one without an interval polls at the configured one), or `own_devices` (the
    gateway's environment and command line) when `config` has none."""
    if config.devices is None:
        devices = list(own_devices)
    else:
        devices = [ModbusDevice(**{**d.model_dump(exclude_none=True),
                                   "interval_s": d.interval_s or config.interval_s})
                   for d in config.devices]
    settings = settings.model_copy(update={
        "modbus_enabled": config.enabled, "modbus_interval_s": config.interval_s,
        "modbus_timeout_s": config.timeout_s, "modbus_offline_after": config.offline_after})
    return settings, devices


def config_problems(config: ModbusGatewayConfig, settings: Settings | None = None) -> list[str]:
    """Why `config`'s devices cannot be polled: unknown profiles, repeated device ids."""
    problems, seen = [], set()
    for i, d in enumerate(config.devices or ()):
        try:
            load_profile(d.profile, settings)
        except ProfileError as exc:
            problems.append(f"devices.{i}.profile: {exc}")
        if (d.site, d.device_id) in seen:
            problems.append(f"devices.{i}: device {d.device_id!r} of site {d.site!r} twice")
        seen.add((d.site, d.device_id))
    return problems


@dataclass
class Snapshot:
    quantities: dict[str, float]
    aux: dict[str, float]
    registers: dict[int, int]


class ModbusReader:
    """One device: connect, (SunSpec) discover, read snapshots, write setpoints."""

    def __init__(self, host: str, port: int, unit_id: int, profile: Profile,
                 timeout_s: float = 1.0):
        self.host, self.port, self.unit_id = host, port, unit_id
        self.template = profile
        self.profile: Profile | None = None if profile.is_sunspec else profile
        self.timeout_s = timeout_s
        self.client: AsyncModbusTcpClient | None = None
        self.last: Snapshot | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    async def connect(self) -> None:
        self.close()
        # reconnect_delay=0: no background reconnects, the gateway backs off itself
        self.client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s,
                                           retries=0, reconnect_delay=0)
        try:
            ok = await asyncio.wait_for(self.client.connect(), self.timeout_s + 1)
        except (OSError, TimeoutError, ModbusException) as exc:
            self.close()
            raise ModbusDeviceError(f"connect {self.host}:{self.port}: {exc}") from exc
        if not ok:
            self.close()
            raise ModbusDeviceError(f"connect {self.host}:{self.port}: refused or unreachable")
        if self.profile is None:
            self.profile = resolve(self.template, await self.discover_sunspec())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def read_registers(self, address: int, count: int) -> list[int]:
        if self.client is None:
            raise ModbusDeviceError("not connected")
        try:
            rr = await self.client.read_holding_registers(address, count=count,
                                                          device_id=self.unit_id)
        except (ModbusException, OSError, TimeoutError) as exc:
            raise ModbusDeviceError(f"read {address}+{count}: {exc}") from exc
        if rr.isError():
            raise ModbusDeviceError(f"read {address}+{count}: device answered {rr}")
        return list(rr.registers)

    async def discover_sunspec(self) -> dict[int, int]:
        """Start address (of the ID register) of every model in the device's SunSpec chain."""
        for base in self.template.sunspec_bases:
            try:
                marker = await self.read_registers(base, 2)
            except ModbusDeviceError:
                continue
            if tuple(marker) != SUNS:
                continue
            models: dict[int, int] = {}
            addr = base + 2
            for _ in range(256):
                model_id, length = await self.read_registers(addr, 2)
                if model_id == 0xFFFF:
                    return models
                models.setdefault(model_id, addr)
                addr += 2 + length
            raise ModbusDeviceError("SunSpec model chain does not end", retriable=False)
        raise ModbusDeviceError(f"no SunSpec marker at {self.template.sunspec_bases}",
                                retriable=False)

    async def read(self) -> Snapshot:
        if not self.connected:
            await self.connect()
        assert self.profile is not None
        registers: dict[int, int] = {}
        for start, count in read_blocks(self.profile):
            for i, value in enumerate(await self.read_registers(start, count)):
                registers[start + i] = value
        try:
            quantities = decode(self.profile, registers)
        except ValueError as exc:
            raise ModbusDeviceError(f"decode: {exc}", retriable=False) from exc
        aux = {k: v for k, p in self.profile.aux.items()
               if (v := decode_point(p, registers)) is not None}
        self.last = Snapshot(quantities, aux, registers)
        return self.last

    async def write_setpoint(self, active_power_mw: float) -> None:
        """Write the profile's setpoint register (reads first for SunSpec scale factors)."""
        if not self.connected or self.last is None:
            await self.read()
        assert self.profile is not None and self.last is not None and self.client is not None
        p = self.profile.setpoint
        if p is None or p.address is None:
            raise ModbusDeviceError(f"profile {self.profile.name} has no setpoint register",
                                    retriable=False)
        value = setpoint_value(self.profile, active_power_mw, self.last.aux)
        sf = 0
        if p.sf_address is not None:
            raw = self.last.registers.get(p.sf_address, 0)
            sf = raw - 0x10000 if raw >= 0x8000 else raw
        try:
            regs = encode_value(p, value, sf)
            if len(regs) == 1:
                wr = await self.client.write_register(p.address, regs[0], device_id=self.unit_id)
            else:
                wr = await self.client.write_registers(p.address, regs, device_id=self.unit_id)
        except ValueError as exc:
            raise ModbusDeviceError(f"setpoint: {exc}", retriable=False) from exc
        except (ModbusException, OSError, TimeoutError) as exc:
            raise ModbusDeviceError(f"write setpoint: {exc}") from exc
        if wr.isError():
            raise ModbusDeviceError(f"write setpoint: device answered {wr}")


async def probe(host: str, port: int, unit_id: int, profile: Profile,
                timeout_s: float = 2.0) -> dict[str, Any]:
    """Connect, read one snapshot, report (the ``POST /api/modbus/test`` answer)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader = ModbusReader(host, port, unit_id, profile, timeout_s)
    try:
        snap = await reader.read()
    except (ModbusDeviceError, ProfileError) as exc:
        return {"ok": False, "error": str(exc),
                "elapsed_ms": round((loop.time() - started) * 1000, 1)}
    finally:
        reader.close()
    return {"ok": True, "values": snap.quantities, "aux": snap.aux,
            "elapsed_ms": round((loop.time() - started) * 1000, 1)}
