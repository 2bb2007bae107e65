"""A simulated battery (`bess simulate device`): a real Modbus TCP server with a profile's
register map (default or SunSpec) and/or an MQTT publisher of the site telemetry, driven by
`domain.telemetry.battery` (SoC from the power setpoint with efficiencies and limits, heating).

Setpoints arrive through the profile's setpoint holding register (written by the Modbus gateway)
or the MQTT command topic ``<prefix>/<site>/commands``; either way the battery follows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import orjson
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from domain.telemetry.battery import BatteryParams, BatteryState, step
from domain.telemetry.registers import Point, Profile, decode_point, encode_value, resolve
from domain.telemetry.registers import setpoint_mw as setpoint_from_device
from domain.telemetry.units import denormalise
from infra import mqtt
from infra.logging import get_logger
from infra.settings import Settings

log = get_logger("gateways.simulator")
SUNSPEC_BASE = 40000


def sunspec_layout(profile: Profile,
                   base: int = SUNSPEC_BASE) -> tuple[dict[int, int], dict[int, int]]:
    """Model start addresses and the static registers ("SunS", model headers, end marker)."""
    regs = {base: 0x5375, base + 1: 0x6E53}
    starts: dict[int, int] = {}
    addr = base + 2
    for model_id, length in profile.models:
        starts[model_id] = addr
        regs[addr], regs[addr + 1] = model_id, length
        for i in range(length):
            regs[addr + 2 + i] = 0
        addr += 2 + length
    regs[addr], regs[addr + 1] = 0xFFFF, 0
    if 1 in starts:  # common model: manufacturer and model strings
        for offset, text in ((2, "bess"), (18, "bess-sim")):
            raw = text.encode().ljust(32, b"\0")
            for i in range(16):
                regs[starts[1] + offset + i] = (raw[2 * i] << 8) | raw[2 * i + 1]
    return starts, regs


MAGNITUDE = {"soc_pct": 100.0, "soh_pct": 100.0, "temperature_c": 150.0, "frequency_hz": 70.0,
             "voltage_v": 1000.0}


def scale_factor(point: Point, max_abs_device: float) -> int:
    """The smallest SunSpec scale factor (>= -2) at which `max_abs_device` fits the type."""
    limit = 32767 if point.type == "int16" else 65535
    sf = -2
    while max_abs_device / 10.0 ** sf > limit:
        sf += 1
    return sf


class SimulatedBattery:
    def __init__(self, site: str, device_id: str, profile: Profile,
                 params: BatteryParams | None = None, state: BatteryState | None = None,
                 tick_s: float = 0.2, frequency_hz: float = 50.0, voltage_v: float = 400.0,
                 speed: float = 1.0):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.site = site
        self.speed = speed
        self.device_id = device_id
        self.params = params or BatteryParams()
        self.state = state or BatteryState(temperature_c=self.params.ambient_c)
        self.tick_s = tick_s
        self.frequency_hz = frequency_hz
        self.voltage_v = voltage_v
        self.registers: dict[int, int] = {}
        self.sf: dict[str, int] = {}
        if profile.is_sunspec:
            starts, self.registers = sunspec_layout(profile)
            self.profile = resolve(profile, starts)
        else:
            self.profile = profile
        self.rating_w = self.params.max_discharge_mw * 1e6
        for p in [*self.profile.all_points(), self.profile.setpoint]:
            if p is None or p.address is None:
                continue
            for i in range(p.count):
                self.registers.setdefault(p.address + i, 0)
            if p.sf_address is not None:
                self.sf[p.name] = self._sf_for(p)
                self.registers[p.sf_address] = self.sf[p.name] & 0xFFFF
        self.server: ModbusTcpServer | None = None
        self._setpoint_raw: list[int] | None = None
        self.started = time.monotonic()

    def _sf_for(self, p: Point) -> int:
        if p.name == "setpoint":
            return -1
        if p.name in ("active_power_mw", "pv_power_mw", "load_power_mw", "rated_power_w"):
            return scale_factor(p, self.rating_w * 1.2)
        return scale_factor(p, MAGNITUDE.get(p.name, 1000.0))

    def values(self) -> dict[str, float]:
        """Canonical values of the quantities a device reports."""
        return {"soc_pct": self.state.soc_pct, "active_power_mw": self.state.power_mw,
                "temperature_c": self.state.temperature_c, "soh_pct": self.state.soh_pct,
                "frequency_hz": self.frequency_hz, "voltage_v": self.voltage_v}

    def encode_registers(self) -> dict[int, int]:
        """The profile's registers for the current state."""
        out: dict[int, int] = {}
        values = self.values()
        for name, p in self.profile.points.items():
            if name not in values or p.address is None:
                continue
            device_value = denormalise(name, values[name], p.unit)
            for i, reg in enumerate(encode_value(p, device_value, self.sf.get(name, 0))):
                out[p.address + i] = reg
        for name, p in self.profile.aux.items():
            if name == "rated_power_w" and p.address is not None:
                for i, reg in enumerate(encode_value(p, self.rating_w, self.sf[name])):
                    out[p.address + i] = reg
        return out

    def set_setpoint(self, active_power_mw: float) -> None:
        self.state = replace(self.state, setpoint_mw=active_power_mw)
        log.info("setpoint", site=self.site, active_power_mw=active_power_mw)

    # --- Modbus ---------------------------------------------------------------------------

    async def start_modbus(self, host: str, port: int) -> None:
        top = max(self.registers) + 2 if self.registers else 16
        device = SimDevice(id=0, simdata=[SimData(address=0, count=top, values=0,
                                                  datatype=DataType.REGISTERS)])
        self.server = ModbusTcpServer(device, address=(host, port))
        await self.server.serve_forever(background=True)
        await self._write_registers({**self.registers, **self.encode_registers()})
        await self._read_setpoint_register()  # remember the initial (zero) setpoint registers
        log.info("simulated battery serving modbus", site=self.site, port=port,
                 profile=self.profile.name)

    async def stop_modbus(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def _write_registers(self, regs: dict[int, int]) -> None:
        assert self.server is not None
        run: list[int] = []
        start = -1
        for addr in sorted(regs):
            if run and addr != start + len(run):
                await self.server.async_setValues(1, 16, start, run)
                run = []
            if not run:
                start = addr
            run.append(regs[addr])
        if run:
            await self.server.async_setValues(1, 16, start, run)

    async def _read_setpoint_register(self) -> None:
        p = self.profile.setpoint
        if self.server is None or p is None or p.address is None:
            return
        raw = await self.server.async_getValues(1, 3, p.address, p.count)
        if raw == self._setpoint_raw:
            return
        first = self._setpoint_raw is None
        self._setpoint_raw = [int(x) for x in raw]
        if first:
            return
        regs = {p.address + i: int(v) for i, v in enumerate(raw)}
        if p.sf_address is not None:
            regs[p.sf_address] = self.sf["setpoint"] & 0xFFFF
        value = decode_point(p, regs)
        if value is not None:
            self.set_setpoint(setpoint_from_device(self.profile, value,
                                                   {"rated_power_w": self.rating_w}))

    # --- the clock -------------------------------------------------------------------------

    async def tick(self, dt_s: float) -> None:
        await self._read_setpoint_register()
        self.state = step(self.state, self.params, dt_s)
        if self.server is not None:
            await self._write_registers(self.encode_registers())

    async def run_physics(self) -> None:
        """Step the physics every `tick_s` wall seconds by the elapsed wall time times `speed`
        (simulated seconds per wall second: 3600 follows a price replay at one market hour per
        second)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            await self.tick((now - last) * self.speed)
            last = now

    # --- MQTT -------------------------------------------------------------------------------

    def telemetry_message(self) -> bytes:
        v = self.values()
        return orjson.dumps({
            "device_id": f"{self.device_id}-meter", "timestamp": datetime.now(UTC).isoformat(),
            "frequency_hz": round(v["frequency_hz"], 4), "voltage_v": v["voltage_v"],
            "soh_pct": v["soh_pct"], "soc_pct": round(v["soc_pct"], 4),
            "active_power_mw": round(v["active_power_mw"], 6),
            "temperature_c": round(v["temperature_c"], 3)})

    async def run_mqtt(self, settings: Settings, interval_s: float = 1.0) -> None:
        """Publish site telemetry every `interval_s` and follow MQTT setpoints; reconnects."""
        commands = f"{settings.mqtt_prefix}/{self.site}/commands"
        topic = f"{settings.mqtt_prefix}/{self.site}/telemetry"
        while True:
            try:
                async with mqtt.client(settings, identifier=f"bess-sim-{self.device_id}") as c:
                    await c.subscribe(commands, qos=1)

                    async def publish_loop(client: aiomqtt.Client = c) -> None:
                        while True:
                            await client.publish(topic, self.telemetry_message(), qos=0)
                            await asyncio.sleep(interval_s)

                    pub = asyncio.create_task(publish_loop())
                    try:
                        async for message in c.messages:
                            self._command(message.payload)
                    finally:
                        pub.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await pub
            except aiomqtt.MqttError as exc:
                log.warning("simulator mqtt connection lost", error=str(exc))
                await asyncio.sleep(1.0)

    def _command(self, payload: Any) -> None:
        try:
            body = orjson.loads(payload)
            self.set_setpoint(float(body["active_power_mw"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("bad command", error=str(exc))


async def run_simulator(settings: Settings, site: str, *, device_id: str | None = None,
                        profile: Profile, modbus_port: int | None, mqtt_enabled: bool,
                        params: BatteryParams | None = None, soc_pct: float = 50.0,
                        tick_s: float = 0.2, mqtt_interval_s: float = 1.0,
                        speed: float = 1.0) -> None:
    sim = SimulatedBattery(site, device_id or f"sim-{site}", profile, params,
                           BatteryState(soc_pct=soc_pct), tick_s=tick_s, speed=speed)
    tasks = [asyncio.create_task(sim.run_physics())]
    if modbus_port is not None:
        await sim.start_modbus("127.0.0.1", modbus_port)
    if mqtt_enabled:
        tasks.append(asyncio.create_task(sim.run_mqtt(settings, mqtt_interval_s)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await sim.stop_modbus()
