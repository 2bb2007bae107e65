"""EMS end to end on the real broker and database: real prices -> forecaster -> dispatch ->
plan, setpoint to a simulated battery behind the Modbus gateway, auto-trading orders through
risk into the book; the projection and the API show the plan, forecasts and strategies.

Real 2023 AT prices are shifted by whole weeks into the future (weekday patterns kept), so the
event time of this test never meets the wall-clock periods other tests trade.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from domain.telemetry.battery import BatteryParams, BatteryState
from gateways.market_data.service import publish_clock
from gateways.modbus.gateway import run_gateway
from gateways.simulator.device import SimulatedBattery
from infra.kafka_io import make_producer
from infra.local.process import free_port
from infra.modbus import ModbusDevice, load_profile
from infra.settings import PROJECT_ROOT
from projections.ems import EmsProjection
from projections.framework import ProjectionRunner
from projections.telemetry import TelemetryProjection
from schemas.catalog import (
    DEVICE_STATUS,
    EMS_COMMANDS,
    FORECASTS,
    ORDER_COMMANDS_TOPIC,
    ORDER_EVENTS_TOPIC,
    PLANS,
    SETPOINTS,
)
from schemas.ems import DispatchPlanned, ForecastPublished, SetStrategy, StrategySelected
from schemas.telemetry import SetpointDelivered, SetpointIssued
from schemas.trading import OrderAccepted, OrderRejected, SubmitOrder
from tests.integration.helpers import publish as publish_ticks
from tests.integration.helpers import read_until, real_ticks, start_api
from tests.integration.telemetry_helpers import eventually, running

pytestmark = pytest.mark.integration
SITE = "ems-e2e"
PRICE_MARKET = "TEST_EMS_AT_DAY_AHEAD_60MIN"
TRADING_MARKET = "EPEX_AT_INTRADAY_15MIN"
SHIFT_WEEKS = 4


def _config(tmp: Path) -> dict[str, str]:
    ems = yaml.safe_load((PROJECT_ROOT / "policy" / "ems.yaml").read_text())
    site = ems["sites"][0]
    site["site_id"] = SITE
    site["markets"]["price"] = PRICE_MARKET
    site["markets"]["trading"] = TRADING_MARKET
    site.setdefault("strategies", {})["auto_trading"] = True
    (tmp / "ems.yaml").write_text(yaml.safe_dump(ems))
    policy = yaml.safe_load((PROJECT_ROOT / "policy" / "policy.yaml").read_text())
    policy["sites"][SITE] = {"capacity_mwh": 4, "max_power_mw": 2,
                             "max_telemetry_age_s": 10 ** 9}
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    return {"BESS_EMS_FILE": str(tmp / "ems.yaml"), "BESS_POLICY_FILE": str(tmp / "policy.yaml"),
            "BESS_FORECAST_TRAINING_DAYS": "21", "BESS_SITES": SITE}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "infra.cli", *args], env=env,
                                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _mine(messages: list, kind: type) -> list:
    return [m for m in messages if isinstance(m.payload, kind)
            and getattr(m.payload, "site", None) == SITE]


@pytest.fixture(scope="module")
async def ems(services, tmp_path_factory):
    extra = _config(tmp_path_factory.mktemp("ems"))
    env = services.env(**extra)
    procs = [_spawn(["worker", name], env, services.home / f"ems-{name}.log")
             for name in ("forecaster", "dispatch", "risk", "matching")]
    api, base = await start_api(services.env(BESS_API_PORT=str(free_port()), **extra),
                                services.home / "api-ems.log")
    yield base
    _stop(api)
    for proc in procs:
        _stop(proc)


async def test_prices_become_a_plan_a_setpoint_at_the_device_and_orders_in_the_book(
        services, ems) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    source_end = datetime(2023, 6, 1, tzinfo=UTC)
    weeks = (now + timedelta(weeks=SHIFT_WEEKS) - source_end) // timedelta(weeks=1)
    shift = timedelta(weeks=weeks)
    clock = source_end + shift
    ticks = [t.model_copy(update={"delivery_start": t.delivery_start + shift,
                                  "delivery_end": t.delivery_end + shift})
             for t in real_ticks(PRICE_MARKET, source_end - timedelta(days=28), source_end)]
    assert len(ticks) >= 27 * 24
    await publish_ticks(services.bootstrap, ticks)

    port = free_port()
    sim = SimulatedBattery(SITE, "bess-1", load_profile("default"), BatteryParams(),
                           BatteryState(soc_pct=50.0), tick_s=0.2)
    await sim.start_modbus("127.0.0.1", port)
    physics = asyncio.create_task(sim.run_physics())
    device = ModbusDevice(site=SITE, device_id="bess-1", host="127.0.0.1", port=port,
                          interval_s=0.5)
    producer = make_producer(services.bootstrap)
    await producer.start()
    try:
        async with running(lambda ready: run_gateway(services.settings(), [device], ready)):
            await publish_clock(producer, clock, clock="replay", source="test")
            plans = _mine(await read_until(
                services.bootstrap, PLANS.name,
                lambda m: bool(_mine(m, DispatchPlanned)), 180), DispatchPlanned)
            assert plans, "no DispatchPlanned"
            plan = plans[0].payload
            setpoints = _mine(await read_until(
                services.bootstrap, SETPOINTS.name,
                lambda m: bool(_mine(m, SetpointIssued)), 30), SetpointIssued)
            issued = setpoints[0]
            assert issued.payload.issued_by == "dispatch"
            assert issued.payload.active_power_mw == pytest.approx(
                plan.steps[0].power_kw / 1000.0)
            delivered = [m.payload for m in await read_until(
                services.bootstrap, DEVICE_STATUS.name,
                lambda m: any(isinstance(e.payload, SetpointDelivered)
                              and e.payload.setpoint_event_id == str(issued.event_id)
                              for e in m), 30)
                if isinstance(m.payload, SetpointDelivered)
                and m.payload.setpoint_event_id == str(issued.event_id)]
            assert delivered and delivered[0].ok
            await eventually(lambda: abs(sim.state.setpoint_mw
                                         - issued.payload.active_power_mw) <= 1e-3)

            # advance the event time hour by hour until the plan trades
            orders: list = []
            for hour in range(1, 13):
                await publish_clock(producer, clock + timedelta(hours=hour), clock="replay",
                                    source="test")
                orders = _mine(await read_until(
                    services.bootstrap, ORDER_COMMANDS_TOPIC.name,
                    lambda m: bool(_mine(m, SubmitOrder)), 8), SubmitOrder)
                if orders:
                    break
            assert orders, "the plan placed no order in 12 hours of event time"
    finally:
        physics.cancel()
        await producer.stop()
        await sim.stop_modbus()

    order = orders[0].payload
    assert order.market == TRADING_MARKET and order.account == SITE
    assert order.delivery_start >= clock + timedelta(minutes=5)
    outcome = [m.payload for m in await read_until(
        services.bootstrap, ORDER_EVENTS_TOPIC.name,
        lambda m: any(getattr(e.payload, "order_id", None) == order.order_id for e in m), 60)
        if getattr(m.payload, "order_id", None) == order.order_id]
    assert outcome and isinstance(outcome[0], OrderAccepted), outcome
    assert not any(isinstance(o, OrderRejected) for o in outcome)

    # every constraint of the battery holds in the plan
    for step in plan.steps:
        assert 15.0 - 1e-6 <= step.soc_pct <= 90.0 + 1e-6
        assert -2000.0 - 1e-6 <= step.power_kw <= 2000.0 + 1e-6
        assert min(step.charge_kw, step.discharge_kw) <= 1e-6
    assert len(plan.steps) == 96 and plan.status == "optimal"


async def test_projection_and_api_show_plan_forecasts_and_strategy(services, ems) -> None:
    base = ems
    await read_until(services.bootstrap, FORECASTS.name,
                     lambda m: {e.payload.quantity for e in _mine(m, ForecastPublished)}
                     >= {"price", "load", "pv"}, 60)
    await ProjectionRunner(EmsProjection(), services.dsn, services.bootstrap).run_to_end()
    await ProjectionRunner(TelemetryProjection(), services.dsn, services.bootstrap).run_to_end()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        plan = (await client.get("/api/plan", params={"site": SITE})).json()
        assert plan["site"] == SITE and len(plan["steps"]) == 96
        forecast = (await client.get("/api/forecast", params={"site": SITE})).json()
        assert {"price", "load", "pv"} <= set(forecast)
        price = forecast["price"]
        assert price["model"] and len(price["points"]) == 96
        assert all(p["p10"] <= p["p50"] <= p["p90"] for p in price["points"])
        assert max(p["p50"] for p in forecast["pv"]["points"]) > 0
        strategies = (await client.get("/api/strategies")).json()
        assert [s["name"] for s in strategies["strategies"]] == [
            "arbitrage", "peak_shaving", "self_consumption", "load_balancing"]
        history = (await client.get("/api/history/optimization",
                                    params={"site": SITE, "days": 7})).json()
        assert history["optimizations"]
        summary = (await client.get("/api/analytics/summary", params={"site": SITE})).json()
        assert summary["current_plan"]["strategy"] == plan["strategy"]
        daily = (await client.get("/api/analytics/daily", params={"site": SITE})).json()
        assert all(d["mean_soc_pct"] is not None for d in daily["days"])
        assert (await client.get("/api/sites/nowhere/state")).status_code == 404
        state = (await client.get(f"/api/sites/{SITE}/state")).json()
        assert state["plan"]["plan_id"] == plan["plan_id"]
        soc = state["telemetry"]["soc_pct"]
        assert soc is not None and 15.0 <= soc <= 90.0
        view = (await client.get("/api/sites/aggregated")).json()
        assert view["site_count"] == 1 and view["total_capacity_kwh"] == 4000
        assert view["mean_soc_pct"] == pytest.approx(soc)
        assert view["stored_energy_kwh"] == pytest.approx(4000 * soc / 100)
        bad = await client.post("/api/strategy", json={"site": SITE, "strategy": "moon"})
        assert bad.status_code == 422

        r = await client.post("/api/strategy", json={"site": SITE, "strategy": "peak_shaving"})
        assert r.status_code == 202
    selected = _mine(await read_until(
        services.bootstrap, PLANS.name,
        lambda m: any(e.payload.strategy == "peak_shaving" and e.payload.mode == "manual"
                      for e in _mine(m, StrategySelected)), 60), StrategySelected)
    assert any(s.payload.strategy == "peak_shaving" for s in selected)
    replanned = _mine(await read_until(
        services.bootstrap, PLANS.name,
        lambda m: any(e.payload.trigger == "strategy" and e.payload.strategy == "peak_shaving"
                      for e in _mine(m, DispatchPlanned)), 60), DispatchPlanned)
    assert any(p.payload.trigger == "strategy" for p in replanned)
    commands = _mine(await read_until(services.bootstrap, EMS_COMMANDS.name,
                                      lambda m: bool(_mine(m, SetStrategy)), 10), SetStrategy)
    assert commands[-1].payload.strategy == "peak_shaving"


async def test_a_malformed_ems_command_is_dead_lettered(services, ems) -> None:
    producer = make_producer(services.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(EMS_COMMANDS.name, b'{"event_type": "SetStrategy"}',
                                     key=SITE.encode())
    finally:
        await producer.stop()
    letters = await read_until(services.bootstrap, f"{EMS_COMMANDS.name}.dlq",
                               lambda m: any(e.payload.original_topic == EMS_COMMANDS.name
                                             for e in m), 60)
    assert any(e.payload.original_topic == EMS_COMMANDS.name for e in letters)

