"""`bess up`'s telemetry services as processes: `bess simulate device` (Modbus + MQTT), `bess
gateway modbus` and `bess gateway mqtt`; live readings of both protocols reach Kafka."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.local.process import free_port
from infra.settings import PROJECT_ROOT
from schemas.catalog import TELEMETRY_READINGS
from tests.integration.helpers import read_until

pytestmark = pytest.mark.integration


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "infra.cli", *args], env=env,
                                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


async def test_simulator_and_gateways_as_processes(services, mosquitto) -> None:
    site, port = f"e2e-{uuid.uuid4().hex[:8]}", free_port()
    env = services.env(BESS_MQTT_PORT=str(mosquitto), BESS_MQTT_PREFIX=f"e{site}",
                       BESS_SITES=site)
    procs = []
    for name, args in (
        ("sim", ["simulate", "device", "--site", site, "--modbus-port", str(port), "--mqtt"]),
        ("gw-modbus", ["gateway", "modbus", "--device", f"{site}=127.0.0.1:{port}",
                       "--interval-s", "0.5"]),
        ("gw-mqtt", ["gateway", "mqtt"]),
    ):
        procs.append(_spawn(args, env, services.home / f"e2e-{name}.log"))
    try:
        events = await read_until(
            services.bootstrap, TELEMETRY_READINGS.name,
            lambda m: {e.payload.source for e in m if e.payload.site == site} >= {"modbus",
                                                                                  "mqtt"}, 90)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)
    mine = [e.payload for e in events if e.payload.site == site]
    modbus = next(r for r in mine if r.source == "modbus")
    mqtt = next(r for r in mine if r.source == "mqtt")
    assert modbus.soc_pct == 50.0 and modbus.device_id == f"{site}-modbus"
    assert mqtt.device_id == f"sim-{site}-meter" and mqtt.frequency_hz == 50.0
