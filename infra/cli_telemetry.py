"""`bess` commands of the telemetry edge: gateways, the device simulator, key hashing.

Registered on the main app by `register` (called from `infra.cli`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from infra.logging import configure_logging
from infra.settings import get_settings

simulate_app = typer.Typer(help="Simulated field devices.", no_args_is_help=True)
telemetry_app = typer.Typer(help="Telemetry helpers.", no_args_is_help=True)


def _setup() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


def gateway_modbus(
    device: Annotated[list[str] | None, typer.Option(
        help="SITE=HOST:PORT[/UNIT][@PROFILE] (repeatable); adds to BESS_MODBUS_DEVICES / "
             "BESS_MODBUS_HOST")] = None,
    interval_s: Annotated[float | None, typer.Option(help="poll interval, seconds")] = None,
) -> None:
    """Poll Modbus TCP devices into telemetry.readings.v1 and write setpoints."""
    from gateways.modbus.gateway import run_gateway
    from infra.modbus import ModbusDevice, devices_from_settings

    _setup()
    settings = get_settings()
    if not settings.modbus_enabled:
        raise typer.Exit(0)
    devices = devices_from_settings(settings)
    for spec in device or []:
        site, _, rest = spec.partition("=")
        rest, _, profile = rest.partition("@")
        rest, _, unit = rest.partition("/")
        host, _, port = rest.rpartition(":")
        devices.append(ModbusDevice(site=site, device_id=f"{site}-modbus", host=host,
                                    port=int(port), unit_id=int(unit or 1),
                                    profile=profile or settings.modbus_profile,
                                    interval_s=interval_s or settings.modbus_interval_s))
    asyncio.run(run_gateway(settings, devices))


def gateway_mqtt(
    sensor_site: Annotated[str, typer.Option(
        help="device_id=site,... for discovered sensors without a site")] = "",
) -> None:
    """Subscribe the MQTT telemetry topics into telemetry.readings.v1; publish setpoints."""
    from gateways.mqtt.gateway import run_gateway

    _setup()
    settings = get_settings()
    if not settings.mqtt_enabled:
        raise typer.Exit(0)
    asyncio.run(run_gateway(settings, sensor_site))


@simulate_app.command("device")
def simulate_device(
    site: Annotated[str, typer.Option(help="site id")] = "site-1",
    device_id: Annotated[str | None, typer.Option(help="default sim-<site>")] = None,
    modbus_port: Annotated[int | None, typer.Option(help="serve Modbus TCP on this port")] = None,
    mqtt: Annotated[bool, typer.Option(help="publish <prefix>/<site>/telemetry")] = False,
    profile: Annotated[str, typer.Option(help="register map: default, sunspec or a path")]
    = "default",
    soc: Annotated[float, typer.Option(help="initial SoC, %")] = 50.0,
    capacity_mwh: Annotated[float, typer.Option()] = 4.0,
    max_power_mw: Annotated[float, typer.Option()] = 2.0,
    tick_s: Annotated[float, typer.Option(help="physics step, seconds")] = 0.2,
    speed: Annotated[float, typer.Option(
        min=0.001, help="simulated seconds per wall second (3600 = a price replay's speed)")] = 1.0,
) -> None:
    """A simulated battery speaking Modbus TCP and/or MQTT."""
    from domain.telemetry.battery import BatteryParams
    from gateways.simulator.device import run_simulator
    from infra.modbus import load_profile

    _setup()
    settings = get_settings()
    params = BatteryParams(capacity_mwh=capacity_mwh, max_charge_mw=max_power_mw,
                           max_discharge_mw=max_power_mw)
    asyncio.run(run_simulator(settings, site, device_id=device_id,
                              profile=load_profile(profile, settings), modbus_port=modbus_port,
                              mqtt_enabled=mqtt, params=params, soc_pct=soc, tick_s=tick_s,
                              speed=speed))


@telemetry_app.command("hash-key")
def hash_key(key: str) -> None:
    """Print the scrypt entry of an API key for BESS_API_KEY_HASHES."""
    from infra.api_keys import hash_key as _hash

    typer.echo(_hash(key))


def register(app: typer.Typer, gateway_app: typer.Typer) -> None:
    gateway_app.command("modbus")(gateway_modbus)
    gateway_app.command("mqtt")(gateway_mqtt)
    app.add_typer(simulate_app, name="simulate")
    app.add_typer(telemetry_app, name="telemetry")
