"""The EMS processors' `handle` without Kafka: real prices and a clock tick make a price
forecast; the forecast and a SoC reading make a plan, a setpoint and an order; the state
written to the changelog restores the same behaviour."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.forecasting import ForecastOptions
from gateways.market_data.price_file import read_price_csv
from schemas.clock import ClockTicked
from schemas.ems import (
    DispatchFailed,
    DispatchPlanned,
    ForecastPublished,
    SetStrategy,
    StrategySelected,
)
from schemas.envelope import decode, encode, new_envelope
from schemas.telemetry import SetpointIssued, TelemetryReceived
from schemas.trading import SubmitOrder
from streams.ems.dispatch import DispatchProcessor
from streams.ems.forecaster import ForecastProcessor
from streams.ems.sites import read_sites
from streams.runtime import Output

ROOT = Path(__file__).resolve().parents[2]
CLOCK = datetime(2023, 6, 1, 10, 0, tzinfo=UTC)
MARKET = "EPEX_AT_DAY_AHEAD_60MIN"


@dataclass
class FakeRecord:
    topic: str
    value: bytes
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp: int = 0


def rec(topic: str, payload: Any, at: datetime) -> FakeRecord:
    return FakeRecord(topic, encode(new_envelope(payload, occurred_at=at, source="test")))


def payloads(out: Output, kind: type) -> list[Any]:
    found = [decode(e.value).payload for e in out.emits]
    return [p for p in found if isinstance(p, kind)]


@pytest.fixture(scope="module")
def sites():
    return read_sites(ROOT / "policy" / "ems.yaml")


@pytest.fixture(scope="module")
def price_forecast(sites) -> tuple[ForecastPublished, Output]:
    fp = ForecastProcessor(sites, interval_s=3600,
                           options=ForecastOptions(training_days=21, prophet=False))
    fp.restore(0, {})
    ticks = list(read_price_csv(ROOT / "data" / "at_hourly_2015_2023.csv",
                                start=CLOCK - timedelta(days=28), end=CLOCK + timedelta(hours=6)))
    out = Output()
    fp.handle(0, [rec("market.price-ticks.v1", t, t.delivery_start) for t in ticks]
              + [rec("system.clock.v1", ClockTicked(at=CLOCK, clock="replay"), CLOCK)], out)
    found = payloads(out, ForecastPublished)
    assert len(found) == 1
    return found[0], out


def test_the_clock_makes_a_price_forecast_for_each_site_of_the_market(price_forecast) -> None:
    forecast, _ = price_forecast
    assert forecast.site == "site-1" and forecast.market == MARKET
    assert forecast.issued_at == CLOCK and forecast.step_s == 900 and len(forecast.points) == 96
    assert forecast.points[0].start == CLOCK
    assert all(p.p10 <= p.p50 <= p.p90 for p in forecast.points)
    assert forecast.training_end is not None and forecast.training_end <= CLOCK


def test_published_prices_after_the_origin_are_marked_known(price_forecast) -> None:
    forecast, _ = price_forecast
    real = {t.delivery_start: t.price_eur_mwh for t in read_price_csv(
        ROOT / "data" / "at_hourly_2015_2023.csv", start=CLOCK, end=CLOCK + timedelta(hours=6))}
    known = [p for p in forecast.points if p.known]
    assert len(known) == 6 * 4  # six published hours, four quarter-hours each
    for p in known:
        hour = p.start.replace(minute=0)
        assert p.p50 == real[hour] and p.p10 == p.p90 == p.p50
    assert not any(p.known for p in forecast.points if p.start >= CLOCK + timedelta(hours=6))


def test_no_second_forecast_before_the_interval_and_state_restores(sites, price_forecast) -> None:
    _, out = price_forecast
    state = {k: v for k, v in out.state.items() if v is not None}
    fp = ForecastProcessor(sites, interval_s=3600,
                           options=ForecastOptions(training_days=21, prophet=False))
    fp.restore(0, state)
    early = Output()
    fp.handle(0, [rec("system.clock.v1", ClockTicked(at=CLOCK + timedelta(minutes=30),
                                                     clock="replay"), CLOCK)], early)
    assert payloads(early, ForecastPublished) == []
    due = Output()
    fp.handle(0, [rec("system.clock.v1", ClockTicked(at=CLOCK + timedelta(hours=1),
                                                     clock="replay"), CLOCK)], due)
    assert len(payloads(due, ForecastPublished)) == 1


def _soc(at: datetime, soc: float) -> TelemetryReceived:
    return TelemetryReceived(site="site-1", device_id="bms", source="manual", device_time=at,
                             received_at=at, soc_pct=soc)


def test_a_forecast_makes_a_plan_a_setpoint_and_an_order(sites, price_forecast) -> None:
    forecast, _ = price_forecast
    dp = DispatchProcessor(sites)
    dp.restore(0, {})
    out = Output()
    dp.handle(0, [rec("telemetry.readings.v1", _soc(CLOCK, 50.0), CLOCK),
                  rec("ems.forecasts.v1", forecast, CLOCK)], out)
    plans = payloads(out, DispatchPlanned)
    assert len(plans) == 1
    plan = plans[0]
    assert plan.trigger == "forecast" and plan.selection_mode == "auto"
    assert plan.soc_initial_pct == 50.0 and len(plan.steps) == 96
    assert [p.start for p in plan.steps[:2]] == [CLOCK, CLOCK + timedelta(minutes=15)]
    selected = payloads(out, StrategySelected)
    assert len(selected) == 1 and selected[0].strategy == plan.strategy
    assert set(selected[0].scores) == {"arbitrage", "peak_shaving", "self_consumption",
                                       "load_balancing"}
    setpoint = payloads(out, SetpointIssued)[0]
    assert setpoint.active_power_mw == pytest.approx(plan.steps[0].power_kw / 1000)
    kinds = {p.quantity for p in payloads(out, ForecastPublished)}
    assert kinds == {"load", "pv"}
    orders = payloads(out, SubmitOrder)
    step = plan.steps[1]  # the first period after gate closure (5 min)
    energy = step.power_kw * 0.25 / 1000
    if abs(energy) >= 0.05:
        assert len(orders) == 1
        assert orders[0].delivery_start == step.start
        assert float(orders[0].quantity_mwh) == pytest.approx(abs(energy), abs=0.05)
        assert orders[0].side == ("SELL" if energy > 0 else "BUY")
    else:
        assert orders == []


def test_manual_strategy_command_replans_with_that_strategy(sites, price_forecast) -> None:
    forecast, _ = price_forecast
    dp = DispatchProcessor(sites)
    dp.restore(0, {})
    first = Output()
    dp.handle(0, [rec("ems.forecasts.v1", forecast, CLOCK)], first)
    state = {k: v for k, v in first.state.items() if v is not None}
    restored = DispatchProcessor(sites)
    restored.restore(0, state)
    out = Output()
    command = SetStrategy(site="site-1", mode="manual", strategy="peak_shaving",
                          requested_at=CLOCK)
    restored.handle(0, [rec("ems.commands.v1", command, CLOCK)], out)
    plans = payloads(out, DispatchPlanned)
    assert len(plans) == 1
    assert plans[0].strategy == "peak_shaving" and plans[0].trigger == "strategy"
    assert plans[0].selection_mode == "manual"
    assert [s.mode for s in payloads(out, StrategySelected)] == ["manual"]


def test_interval_replans_on_the_clock_and_unknown_sites_are_ignored(sites,
                                                                    price_forecast) -> None:
    forecast, _ = price_forecast
    dp = DispatchProcessor(sites)
    dp.restore(0, {})
    dp.handle(0, [rec("ems.forecasts.v1", forecast, CLOCK)], Output())
    soon, due = Output(), Output()
    dp.handle(0, [rec("system.clock.v1", ClockTicked(at=CLOCK + timedelta(minutes=10),
                                                     clock="replay"), CLOCK)], soon)
    assert payloads(soon, DispatchPlanned) == []
    dp.handle(0, [rec("system.clock.v1", ClockTicked(at=CLOCK + timedelta(minutes=15),
                                                     clock="replay"), CLOCK)], due)
    plans = payloads(due, DispatchPlanned)
    assert len(plans) == 1 and plans[0].trigger == "interval"
    assert plans[0].steps[0].start == CLOCK + timedelta(minutes=15)
    other = Output()
    dp.handle(0, [rec("ems.forecasts.v1", forecast.model_copy(update={"site": "elsewhere"}),
                      CLOCK)], other)
    assert other.emits == [] and b"elsewhere" not in other.state


def test_soc_far_from_the_plan_replans(sites, price_forecast) -> None:
    forecast, _ = price_forecast
    dp = DispatchProcessor(sites)
    dp.restore(0, {})
    first = Output()
    dp.handle(0, [rec("telemetry.readings.v1", _soc(CLOCK, 50.0), CLOCK),
                  rec("ems.forecasts.v1", forecast, CLOCK)], first)
    expected = payloads(first, DispatchPlanned)[0].steps[1].soc_pct
    at = CLOCK + timedelta(minutes=20)
    close, far = Output(), Output()
    dp.handle(0, [rec("telemetry.readings.v1", _soc(at, expected + 1.0), at)], close)
    assert payloads(close, DispatchPlanned) == []
    dp.handle(0, [rec("telemetry.readings.v1", _soc(at, expected + 20.0), at)], far)
    plans = payloads(far, DispatchPlanned)
    assert len(plans) == 1 and plans[0].trigger == "soc_deviation"


def test_a_weather_file_lowers_the_pv_forecast(sites, price_forecast, tmp_path) -> None:
    forecast, _ = price_forecast
    hours = [CLOCK + timedelta(hours=h) for h in range(-2, 27)]
    weather = tmp_path / "weather.csv"
    weather.write_text("timestamp_utc,cloud_cover_pct\n" + "".join(
        f"{t:%Y-%m-%dT%H:%MZ},100\n" for t in hours))
    pv_peaks = {}
    for name, site in (("clear", sites[0]),
                       ("cloudy", replace(sites[0], weather_file=str(weather)))):
        dp = DispatchProcessor([site])
        dp.restore(0, {})
        out = Output()
        dp.handle(0, [rec("ems.forecasts.v1", forecast, CLOCK)], out)
        pv = next(p for p in payloads(out, ForecastPublished) if p.quantity == "pv")
        pv_peaks[name] = max(p.p50 for p in pv.points)
    assert pv_peaks["clear"] > 0
    assert pv_peaks["cloudy"] < 0.5 * pv_peaks["clear"]  # Kasten-Czeplak: 1 - 0.75 at 100 %


def test_an_infeasible_site_reports_dispatch_failed(sites, price_forecast) -> None:
    forecast, _ = price_forecast
    # no grid import at all, but a load the battery cannot carry for 24 h: infeasible
    site = replace(sites[0], grid_import_max_kw=0.0, load_scale=5000.0, pv_peak_kw=0.0)
    dp = DispatchProcessor([site])
    dp.restore(0, {})
    out = Output()
    dp.handle(0, [rec("ems.forecasts.v1", forecast, CLOCK)], out)
    assert payloads(out, DispatchPlanned) == [] and payloads(out, SetpointIssued) == []
    failed = payloads(out, DispatchFailed)
    assert len(failed) == 1
    assert failed[0].reason == "infeasible" and failed[0].trigger == "forecast"


def test_the_forecaster_keeps_the_history_its_longest_model_needs() -> None:
    options = ForecastOptions(training_days=21, lear_training_days=60, prophet=False)
    assert options.history_days > 60
    fp = ForecastProcessor([], interval_s=3600, options=options)  # no site: evicts, no forecast
    fp.restore(0, {})
    ticks = list(read_price_csv(ROOT / "data" / "at_hourly_2015_2023.csv",
                                start=CLOCK - timedelta(days=200), end=CLOCK))
    out = Output()
    fp.handle(0, [rec("market.price-ticks.v1", t, t.delivery_start) for t in ticks]
              + [rec("system.clock.v1", ClockTicked(at=CLOCK, clock="replay"), CLOCK)], out)
    kept = fp.markets[0][MARKET].prices
    oldest = CLOCK - timedelta(days=options.history_days)
    assert oldest <= min(kept) < oldest + timedelta(days=1)  # LEAR's 60 days, not Prophet's 21


def test_a_market_whose_ticks_come_after_the_clock_is_forecast_at_that_clock(sites) -> None:
    options = ForecastOptions(training_days=21, prophet=False)
    fp = ForecastProcessor(sites, interval_s=3600, options=options)
    fp.restore(0, {})
    first = Output()  # the clock is consumed before the market's ticks (another topic)
    fp.handle(0, [rec("system.clock.v1", ClockTicked(at=CLOCK, clock="replay"), CLOCK)], first)
    assert payloads(first, ForecastPublished) == []
    restored = ForecastProcessor(sites, interval_s=3600, options=options)
    restored.restore(0, {k: v for k, v in first.state.items() if v is not None})
    ticks = list(read_price_csv(ROOT / "data" / "at_hourly_2015_2023.csv",
                                start=CLOCK - timedelta(days=28), end=CLOCK))
    later = Output()
    restored.handle(0, [rec("market.price-ticks.v1", t, t.delivery_start) for t in ticks], later)
    found = payloads(later, ForecastPublished)
    assert len(found) == 1 and found[0].issued_at == CLOCK
    again = Output()  # not once more before the interval
    restored.handle(0, [rec("market.price-ticks.v1", ticks[-1], CLOCK)], again)
    assert payloads(again, ForecastPublished) == []
