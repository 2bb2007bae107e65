"""Gateway configuration at run time, end to end: ``POST /api/<gw>/config`` on the real API
process publishes a command to the real Kafka, the gateways (in-process, against a real
Mosquitto and real pymodbus servers) apply it (reconnect, re-poll) and report back, and
``GET /api/<gw>/config`` reflects it. Bad bodies are refused with 422 and the detail;
passwords are never echoed."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import paho.mqtt.publish as paho_publish
import pytest

from domain.telemetry.battery import BatteryState
from gateways.modbus.gateway import run_gateway as run_modbus
from gateways.mqtt.gateway import run_gateway as run_mqtt
from gateways.simulator.device import SimulatedBattery
from infra.api_keys import hash_key
from infra.local.process import ManagedProcess, free_port
from infra.modbus import ModbusDevice, load_profile
from schemas.catalog import TELEMETRY_READINGS
from tests.integration.helpers import read_until, start_api
from tests.integration.telemetry_helpers import eventually, running

pytestmark = pytest.mark.integration
KEY = "bess_config_key"
H = {"X-API-KEY": KEY}


@pytest.fixture(scope="module")
def secured_broker(services) -> Iterator[int]:
    """A second Mosquitto that wants user ``gw`` with password ``s3cret-pw``."""
    data = Path(tempfile.mkdtemp(prefix="bess-mosquitto-auth-"))
    data.chmod(0o755)  # mosquitto drops root for its own user, which must read the file
    passwords = data / "passwords"
    subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", "-c",
                    str(passwords), "gw", "s3cret-pw"], check=True, capture_output=True)
    passwords.chmod(0o644)
    port = free_port()
    conf = data / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {passwords}\npersistence false\n")
    proc = ManagedProcess("mosquitto-auth", [shutil.which("mosquitto") or "/usr/sbin/mosquitto",
                                             "-c", str(conf)], data / "mosquitto.log")
    proc.start()
    proc.wait_port("127.0.0.1", port, 15)
    yield port
    proc.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
async def api(services, mosquitto) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    env = services.env(BESS_API_PORT=str(port), BESS_API_KEY_HASHES=hash_key(KEY),
                       BESS_MQTT_PORT=str(mosquitto), BESS_MODBUS_HOST="127.0.0.1",
                       BESS_MODBUS_PORT="1502")
    env.pop("BESS_API_KEY", None)
    env.pop("BESS_MQTT_PASSWORD", None)
    proc, base = await start_api(env, Path(services.home) / "api-gateway-config.log")
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        yield c
        for gw in ("mqtt", "modbus"):  # later tests start gateways with their own settings
            await c.delete(f"/api/{gw}/config", headers=H)
    proc.terminate()
    proc.wait(10)


def _readings_of(site: str, events: list) -> list:
    return [e.payload for e in events if getattr(e.payload, "site", None) == site]


def _pub(port: int, topic: str, body: dict, auth: dict | None = None) -> None:
    paho_publish.single(topic, json.dumps(body), qos=1, hostname="127.0.0.1", port=port,
                        auth=auth)


async def test_mqtt_config_change_reconnects_the_gateway(services, mosquitto, secured_broker,
                                                         api) -> None:
    c = api
    tag = uuid.uuid4().hex[:8]
    old_site, new_site = f"cfg-old-{tag}", f"cfg-new-{tag}"
    settings = services.settings(mqtt_port=mosquitto, mqtt_prefix=f"a{tag}")
    assert (await c.delete("/api/mqtt/config", headers=H)).status_code == 202
    async with running(lambda ready: run_mqtt(settings, "", ready, client_id=f"gw-{tag}")):
        await asyncio.to_thread(_pub, mosquitto, f"a{tag}/{old_site}/telemetry", {"soc_pct": 11})
        await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                         lambda m: len(_readings_of(old_site, m)) >= 1, 30)

        # to the broker that wants a password, with another prefix and site
        r = await c.post("/api/mqtt/config", headers=H, params={"wait": "true"}, json={
            "port": secured_broker, "username": "gw", "password": "s3cret-pw",
            "prefix": f"b{tag}", "topics": {"soc": f"b{tag}/legacy/soc"}, "site": new_site,
            "silent_after_s": 60})
        assert r.status_code == 200, r.text
        assert "s3cret" not in r.text
        answer = r.json()
        assert answer["status"] == "applied" and answer["gateway"]["ok"] is True
        assert answer["gateway"]["error"] is None and answer["gateway"]["password_set"] is True
        assert answer["config"]["port"] == secured_broker
        assert answer["config"]["password_set"] is True and "password" not in answer["config"]

        got = await c.get("/api/mqtt/config")
        assert "s3cret" not in got.text
        cfg = got.json()
        assert (cfg["source"], cfg["port"], cfg["prefix"], cfg["username"], cfg["site"]) == \
            ("api", secured_broker, f"b{tag}", "gw", new_site)
        assert cfg["topics"]["soc"] == f"b{tag}/legacy/soc"
        assert cfg["topics"]["power"] == settings.mqtt_topic_power  # not given: unchanged
        assert cfg["password_set"] is True and cfg["silent_after_s"] == 60
        assert cfg["config_event_id"] == answer["config_event_id"]
        assert cfg["gateway"]["in_sync"] is True and cfg["gateway"]["instance"] == f"gw-{tag}"

        auth = {"username": "gw", "password": "s3cret-pw"}
        await asyncio.to_thread(_pub, secured_broker, f"b{tag}/legacy/soc",
                                {"value": 42.5, "unit": "%"}, auth)
        await asyncio.to_thread(_pub, secured_broker, f"b{tag}/{new_site}/telemetry",
                                {"soc_pct": 43}, auth)
        await asyncio.to_thread(_pub, mosquitto, f"a{tag}/{old_site}/telemetry", {"soc_pct": 12})
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: len(_readings_of(new_site, m)) >= 2, 30)
        assert sorted(r.soc_pct for r in _readings_of(new_site, events)) == [42.5, 43.0]
        assert {r.device_id for r in _readings_of(new_site, events)} == \
            {f"{new_site}-bess", f"{new_site}-mqtt"}
        # the old broker and prefix are no longer listened to
        assert [r.soc_pct for r in _readings_of(old_site, events)] == [11.0]

        # a wrong password: the gateway reports that it cannot connect with it
        r = await c.post("/api/mqtt/config", headers=H, params={"wait": "true"},
                         json={"password": "wrong"})
        assert r.status_code == 200 and "wrong" not in r.text
        assert "refused" in r.json()["gateway"]["error"]

        # back to the environment: the old broker and prefix again
        r = await c.delete("/api/mqtt/config", headers=H, params={"wait": "true"})
        assert r.status_code == 200, r.text
        assert (await c.get("/api/mqtt/config")).json()["source"] == "environment"
        await asyncio.to_thread(_pub, mosquitto, f"a{tag}/{old_site}/telemetry", {"soc_pct": 13})
        events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                  lambda m: 13.0 in [r.soc_pct for r in _readings_of(old_site, m)],
                                  30)
    assert 12.0 not in [r.soc_pct for r in _readings_of(old_site, events)]


async def test_bad_config_bodies_are_refused_with_the_detail(api) -> None:
    c = api
    assert (await c.post("/api/mqtt/config", json={"port": 1884})).status_code == 401
    assert (await c.post("/api/modbus/config", json={},
                         headers={"X-API-KEY": "nope"})).status_code == 401
    cases = [
        ("mqtt", {"port": 70000}, ["body", "port"]),
        ("mqtt", {"port": "high"}, ["body", "port"]),
        ("mqtt", {"colour": "blue"}, ["body", "colour"]),
        ("mqtt", {"silent_after_s": 0}, ["body", "silent_after_s"]),
        ("mqtt", {"topics": {"soc": ""}}, ["body", "topics", "soc"]),
        ("mqtt", {"enabled": None}, ["body"]),
        ("modbus", {"interval_s": -1}, ["body", "interval_s"]),
        ("modbus", {"devices": [{"site": "s", "device_id": "d", "host": "h", "port": 0}]},
         ["body", "devices", 0, "port"]),
        ("modbus", {"devices": [{"site": "s", "device_id": "d"}]}, ["body", "devices", 0, "host"]),
    ]
    for gateway, body, loc in cases:
        r = await c.post(f"/api/{gateway}/config", json=body, headers=H)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["loc"] == loc, (body, r.json())
    r = await c.post("/api/mqtt/config", json={"enabled": None}, headers=H)
    assert "enabled cannot be null" in r.text
    r = await c.post("/api/modbus/config", headers=H, json={"devices": [
        {"site": "s", "device_id": "d", "host": "h", "profile": "no-such-profile"}]})
    assert r.status_code == 422 and "no Modbus profile 'no-such-profile'" in r.json()["detail"][0]
    r = await c.post("/api/mqtt/config", headers=H, json={"tls": True,
                                                          "ca_file": "/nonexistent/ca.pem"})
    assert r.status_code == 422 and "TLS settings" in r.json()["detail"]
    # nothing of that was published
    assert (await c.get("/api/mqtt/config")).json()["source"] == "environment"
    assert (await c.get("/api/modbus/config")).json()["source"] == "environment"


async def test_modbus_config_change_repolls_other_devices(services, api) -> None:
    c = api
    tag = uuid.uuid4().hex[:8]
    site_a, site_b = f"cfg-a-{tag}", f"cfg-b-{tag}"
    port_a, port_b = free_port(), free_port()
    sim_a = SimulatedBattery(site_a, "bess-a", load_profile("default"),
                             state=BatteryState(soc_pct=21.0, power_mw=1.0, temperature_c=20.0))
    sim_b = SimulatedBattery(site_b, "bess-b", load_profile("default"),
                             state=BatteryState(soc_pct=87.0, power_mw=-0.5, temperature_c=30.0))
    await sim_a.start_modbus("127.0.0.1", port_a)
    await sim_b.start_modbus("127.0.0.1", port_b)
    device_a = ModbusDevice(site=site_a, device_id="bess-a", host="127.0.0.1", port=port_a,
                            interval_s=0.2)
    settings = services.settings()
    assert (await c.delete("/api/modbus/config", headers=H)).status_code == 202
    try:
        async with running(lambda ready: run_modbus(settings, [device_a], ready)):
            await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                             lambda m: len(_readings_of(site_a, m)) >= 1, 30)
            r = await c.post("/api/modbus/config", headers=H, params={"wait": "true"}, json={
                "interval_s": 0.25, "offline_after_failures": 5,
                "devices": [{"site": site_b, "device_id": "bess-b", "host": "127.0.0.1",
                             "port": port_b}]})
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["status"] == "applied" and answer["gateway"]["ok"] is True
            assert [d["port"] for d in answer["config"]["devices"]] == [port_b]
            assert answer["config"]["devices"][0]["interval_s"] == 0.25  # the default applies

            cfg = (await c.get("/api/modbus/config")).json()
            assert (cfg["source"], cfg["devices_from"], cfg["interval_s"]) == ("api", "api", 0.25)
            assert cfg["offline_after_failures"] == 5 and cfg["gateway"]["in_sync"] is True
            assert cfg["devices"] == [{"site": site_b, "device_id": "bess-b",
                                       "host": "127.0.0.1", "port": port_b, "unit_id": 1,
                                       "profile": "default", "interval_s": 0.25}]

            events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                      lambda m: len(_readings_of(site_b, m)) >= 3, 30)
            b = _readings_of(site_b, events)[0]
            assert (b.device_id, b.soc_pct, b.active_power_mw, b.temperature_c) == \
                ("bess-b", 87.0, -0.5, 30.0)
            stopped = len(_readings_of(site_a, events))
            await asyncio.sleep(1.0)
            later = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                                     lambda m: len(_readings_of(site_b, m)) >= 6, 30)
            assert len(_readings_of(site_a, later)) <= stopped + 1  # a poll in flight at most

            # a partial change keeps the rest; the gateway refuses nothing it can poll
            r = await c.post("/api/modbus/config", headers=H, json={"timeout_s": 0.5})
            assert r.status_code == 202 and r.json()["config"]["devices"][0]["port"] == port_b
            await eventually(lambda: _in_sync(c), 20)

            r = await c.delete("/api/modbus/config", headers=H, params={"wait": "true"})
            assert r.status_code == 200 and r.json()["gateway"]["config_event_id"] is None
            cfg = (await c.get("/api/modbus/config")).json()
            assert cfg["source"] == "environment" and cfg["devices"][0]["port"] == 1502
            n_a = len(_readings_of(site_a, await read_until(
                services.bootstrap, TELEMETRY_READINGS.name, lambda m: False, 1)))
            await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                             lambda m: len(_readings_of(site_a, m)) >= n_a + 2, 30)
    finally:
        await sim_a.stop_modbus()
        await sim_b.stop_modbus()


async def _in_sync(c: httpx.AsyncClient) -> bool:
    cfg = (await c.get("/api/modbus/config")).json()
    return bool(cfg["gateway"] and cfg["gateway"]["in_sync"] and cfg["timeout_s"] == 0.5)
