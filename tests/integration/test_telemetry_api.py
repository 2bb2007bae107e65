"""The telemetry API as a real process: REST ingestion with hashed keys publishes events that
the projection turns into /api/state (aggregated, with the source label), /api/history/state and
/api/bess/status; config routes; the Modbus and MQTT connection tests against real peers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from domain.telemetry.battery import BatteryState
from gateways.simulator.device import SimulatedBattery
from infra.api_keys import hash_key
from infra.local.process import free_port
from infra.modbus import load_profile
from schemas.catalog import SETPOINTS, TELEMETRY_READINGS
from tests.integration.helpers import read_until, start_api
from tests.integration.telemetry_helpers import project_telemetry

pytestmark = pytest.mark.integration
KEY = "bess_telemetry_key"



@pytest.fixture(scope="module")
async def api(services, mosquitto):
    site = f"api-{uuid.uuid4().hex[:8]}"
    sim_port, port = free_port(), free_port()
    sim = SimulatedBattery(site, "bess-1", load_profile("default"),
                           state=BatteryState(soc_pct=75.0, power_mw=2.5, temperature_c=28.3))
    await sim.start_modbus("127.0.0.1", sim_port)
    env = services.env(BESS_API_PORT=str(port), BESS_API_KEY_HASHES=hash_key(KEY),
                       BESS_SITES=f"{site},other", BESS_MQTT_PORT=str(mosquitto),
                       BESS_MODBUS_HOST="127.0.0.1", BESS_MODBUS_PORT=str(sim_port),
                       BESS_TELEMETRY_AGGREGATION="temperature_c=weighted_mean",
                       BESS_TELEMETRY_SENSOR_WEIGHTS="t-room=3")
    env.pop("BESS_API_KEY", None)
    proc, base = await start_api(env, services.home / "api-tel.log")
    yield base, site, sim_port
    proc.terminate()
    proc.wait(10)
    await sim.stop_modbus()


async def test_rest_ingestion_answer_and_errors(api, services) -> None:
    base, site, _ = api
    async with httpx.AsyncClient(base_url=base) as c:
        body = {"soc_percent": 75.5, "active_power_mw": 2.5, "temperature_c": 28.3}
        assert (await c.post("/api/bess/telemetry", json=body)).status_code == 401
        r = await c.post("/api/bess/telemetry", json=body, headers={"X-API-KEY": "wrong"})
        assert r.status_code == 401 and r.json()["detail"] == "missing or invalid X-API-KEY"
        r = await c.post("/api/bess/telemetry", json=body, headers={"X-API-KEY": KEY})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["status"] == "OK"
        assert answer["message"] == "Telemetrie erfolgreich aktualisiert"
        data = answer["data"]
        assert (data["soc_percent"], data["active_power_mw"], data["temperature_c"]) == \
            (75.5, 2.5, 28.3)
        assert data["timestamp"].endswith("Z") and len(data["timestamp"]) == 24
        assert data["site"] == site
        bad = await c.post("/api/bess/telemetry", json={"soc_percent": "full"},
                           headers={"X-API-KEY": KEY})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body",
                                                                            "soc_percent"]
        empty = await c.post("/api/bess/telemetry", json={}, headers={"X-API-KEY": KEY})
        assert empty.status_code == 422 and "at least one" in empty.text
        out = await c.post("/api/bess/telemetry", json={"soc_percent": 130},
                           headers={"X-API-KEY": KEY})
        assert out.status_code == 422
        assert out.json()["detail"] == ["soc_pct=130 out of range [0, 100]"]
        naive = await c.post("/api/bess/telemetry", json={"soc_percent": 1,
                                                          "timestamp": "2025-01-25T20:30:00"},
                             headers={"X-API-KEY": KEY})
        assert naive.status_code == 422
    events = await read_until(services.bootstrap, TELEMETRY_READINGS.name,
                              lambda m: any(e.event_id.hex == data["event_id"].replace("-", "")
                                            for e in m), 20)
    event = next(e for e in events if str(e.event_id) == data["event_id"])
    assert event.payload.source == "rest" and event.payload.soc_pct == 75.5
    assert event.source == "api.rest"


async def test_state_aggregates_and_shows_the_source(api, services) -> None:
    base, site, _ = api
    h = {"X-API-KEY": KEY}
    async with httpx.AsyncClient(base_url=base) as c:
        for device, temp in (("t-room", 30.0), ("t-pcs", 25.0), ("t-3", 26.0), ("t-bad", 90.0)):
            r = await c.post("/api/bess/telemetry", headers=h, json={
                "site": site, "device_id": device, "temperature_c": temp})
            assert r.status_code == 200
        r = await c.post("/api/bess/telemetry", headers=h, json={
            "site": site, "device_id": "operator", "soc_percent": 42.0, "source": "manual"})
        assert r.status_code == 200
        await project_telemetry(services.dsn, services.bootstrap)
        state = (await c.get("/api/state", params={"site": site})).json()
        # 90 degC is an outlier; weighted mean of 30 (weight 3), 25, 26 and the REST 28.3
        assert state["temperature_c"] == pytest.approx((30.0 * 3 + 25 + 26 + 28.3) / 6)
        assert state["details"]["soc_pct"]["source_label"] in ("manual input",
                                                              "automatic telemetry")
        soc_devices = set(state["details"]["soc_pct"]["devices"])
        assert soc_devices >= {"operator", f"{site}-rest"}
        assert state["details"]["temperature_c"]["source_label"] == "automatic telemetry"
        power = (await c.get("/api/state", params={"site": site})).json()
        assert power["active_power_mw"] == 2.5
        hist = (await c.get("/api/history/state", params={"site": site, "hours": 1,
                                                          "bucket_s": 3600})).json()
        assert hist["count"] == 1 and hist["points"][0]["readings"] >= 6
        assert hist["points"][0]["soc_pct"] == pytest.approx((75.5 + 42.0) / 2)
        status = (await c.get("/api/bess/status")).json()
        entry = next(s for s in status["sites"] if s["site"] == site)
        assert {d["device_id"] for d in entry["devices"]} >= {"t-room", "operator"}
        assert status["sources"]["rest"] is True
        r = await c.post("/api/bess/setpoint", headers=h,
                         json={"site": site, "active_power_mw": -1.0})
        assert r.status_code == 202
    events = await read_until(services.bootstrap, SETPOINTS.name,
                              lambda m: any(e.payload.site == site for e in m), 20)
    assert next(e for e in events if e.payload.site == site).payload.active_power_mw == -1.0


async def test_manual_input_is_labelled(api, services) -> None:
    base, _, _ = api
    site = f"man-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/api/bess/telemetry", headers={"X-API-KEY": KEY}, json={
            "site": site, "soc_percent": 33.0, "source": "manual"})
        assert r.status_code == 200
        await project_telemetry(services.dsn, services.bootstrap)
        state = (await c.get("/api/state", params={"site": site})).json()
    assert state["soc_pct"] == 33.0 and state["telemetry_source"] == "manual input"


async def test_config_and_connection_tests(api, mosquitto) -> None:
    base, _site, sim_port = api
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        cfg = (await c.get("/api/modbus/config")).json()
        assert cfg["devices"][0]["port"] == sim_port and "sunspec" in cfg["profiles"]
        mq = (await c.get("/api/mqtt/config")).json()
        assert mq["port"] == mosquitto and mq["topics"]["soc"] == "bess/soc"
        assert "password" not in mq
        ok = (await c.post("/api/modbus/test")).json()
        assert ok["ok"] is True
        assert ok["values"] == {"soc_pct": 75.0, "active_power_mw": 2.5, "temperature_c": 28.3}
        down = (await c.post("/api/modbus/test", json={"port": free_port(),
                                                       "timeout_s": 0.5})).json()
        assert down["ok"] is False and down["error"]
        bad = await c.post("/api/modbus/test", json={"profile": "nope"})
        assert bad.status_code == 422
        mok = (await c.post("/api/mqtt/test")).json()
        assert mok["ok"] is True and mok["round_trip_ms"] >= 0
        mdown = (await c.post("/api/mqtt/test", json={"port": free_port(),
                                                      "timeout_s": 1})).json()
        assert mdown["ok"] is False
