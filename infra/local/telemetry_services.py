"""The telemetry services of `bess up`: one simulated battery per configured site (Modbus TCP
on ``BESS_SIM_MODBUS_PORT`` + i, MQTT site telemetry), the Modbus gateway polling them and
the MQTT gateway. ``BESS_SIMULATE=false`` leaves the simulators out (real devices via
``BESS_MODBUS_HOST`` / ``BESS_MODBUS_DEVICES``)."""

from __future__ import annotations

from infra.settings import Settings


def telemetry_commands(settings: Settings, py: list[str],
                       speed: float = 1.0) -> dict[str, list[str]]:
    """The commands by service name; `speed` = the simulators' simulated seconds per wall
    second (the replay speed when `bess up` replays prices, so the batteries live in the same
    time as the plans they follow)."""
    commands: dict[str, list[str]] = {}
    devices: list[str] = []
    if settings.simulate:
        for i, site in enumerate(settings.site_ids):
            port = settings.sim_modbus_port + i
            commands[f"sim-{site}"] = [*py, "simulate", "device", "--site", site,
                                       "--modbus-port", str(port), "--mqtt",
                                       "--speed", f"{speed:g}"]
            devices += ["--device", f"{site}=127.0.0.1:{port}"]
    if settings.modbus_enabled and (devices or settings.modbus_host or settings.modbus_devices):
        commands["gateway-modbus"] = [*py, "gateway", "modbus", *devices]
    if settings.mqtt_enabled:
        commands["gateway-mqtt"] = [*py, "gateway", "mqtt"]
    return commands
