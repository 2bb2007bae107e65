"""domain.dispatch.Dispatcher on the real data shipped in data/: the arbitrage optimum against an
independent MILP built directly with highspy, every constraint of every strategy, what each
strategy achieves on the real household profile, negative prices, DPP re-solves."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import highspy
import numpy as np
import pandas as pd
import pytest

from domain.dispatch import (
    Battery,
    Dispatcher,
    DispatchError,
    DispatchInputs,
    FeedInLimit,
    FeedInRule,
    Plan,
    SiteConfig,
    Tariff,
    TimeWindow,
    TouRule,
    export_limit_kw,
    import_fee_eur_mwh,
)
from schemas.ems import STRATEGIES

DATA = Path(__file__).resolve().parents[2] / "data"
TOL = 1e-6


@cache
def at_prices() -> pd.Series:
    frame = pd.read_csv(DATA / "at_hourly_2015_2023.csv", index_col="timestamp_utc")
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame["price_eur_mwh"].dropna()


@cache
def household() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "household_residential4_hourly.csv", index_col="timestamp_utc")
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame


def hourly(series: pd.Series, start: str, hours: int) -> np.ndarray:
    t0 = pd.Timestamp(start)
    values = series[t0: t0 + pd.Timedelta(hours=hours - 1)].to_numpy(dtype=float)
    assert len(values) == hours, f"{start}: {len(values)} of {hours} hours in the data"
    return values


def quarter_hours(values: np.ndarray) -> np.ndarray:
    return np.repeat(values, 4)


def negative_day() -> tuple[datetime, np.ndarray]:
    rows = json.loads((DATA / "samples" / "awattar_AT_2025-05-11_negative.json").read_text())
    rows = rows["data"]
    start = datetime.fromtimestamp(rows[0]["start_timestamp"] / 1000, UTC)
    return start, np.array([r["marketprice"] for r in rows], dtype=float)


def site(**changes: object) -> SiteConfig:
    base = SiteConfig(
        site_id="site-1", name="Wien", price_market="EPEX_AT_DAY_AHEAD_60MIN",
        trading_market="EPEX_AT_INTRADAY_15MIN", bidding_zone="AT",
        latitude=48.2082, longitude=16.3738, pv_peak_kw=1000.0,
        battery=Battery(capacity_kwh=4000, power_charge_max_kw=2000,
                        power_discharge_max_kw=2000),
        grid_import_max_kw=2500.0, grid_export_max_kw=2500.0,
        feed_in=FeedInLimit(), tariff=Tariff(import_fee_eur_mwh=30.0),
        selection_mode="auto", manual_strategy="arbitrage")
    return replace(base, **changes)  # type: ignore[arg-type]


def home_site(**changes: object) -> SiteConfig:
    """The household itself with a home battery (10 kWh, 4 kW)."""
    return site(pv_peak_kw=8.5, battery=Battery(10.0, 4.0, 4.0), grid_import_max_kw=None,
                grid_export_max_kw=None, **changes)


def site_inputs(start: str, hours: int, *, household_start: str, scale: float = 100.0,
                soc: float = 50.0) -> DispatchInputs:
    prices = hourly(at_prices(), start, hours)
    h = household()
    return DispatchInputs(
        start=pd.Timestamp(start).to_pydatetime(), step_s=900,
        price_eur_mwh=quarter_hours(prices),
        load_kw=quarter_hours(hourly(h["load_kw"], household_start, hours)) * scale,
        pv_kw=quarter_hours(hourly(h["pv_kw"], household_start, hours)) * scale,
        soc_initial_pct=soc)


# -- the independent formulation: a MILP built directly with highspy ---------------------------

def highspy_optimum(s: SiteConfig, inputs: DispatchInputs) -> float:
    """Minimum site cost (energy at price + fees, minus export earnings, plus degradation) of
    a battery that never charges and discharges in one step; built column by column and row by
    row with highspy, independently of cvxpy. Columns per step: c, d, e, imp, exp, curt, u."""
    b = s.battery
    n, dt = inputs.steps, inputs.step_s / 3600.0
    inf = highspy.kHighsInf
    c, d, e, imp, exp, curt, u = (np.arange(n) + k * n for k in range(7))
    pv = np.maximum(inputs.pv_kw, 0.0)
    e0 = b.capacity_kwh * inputs.soc_initial_pct / 100.0
    export_max = export_limit_kw(s, inputs.start, inputs.step_s, n)
    lower = np.zeros(7 * n)
    upper = np.concatenate([
        np.full(n, b.power_charge_max_kw), np.full(n, b.power_discharge_max_kw),
        np.full(n, b.capacity_kwh * b.soc_max_pct / 100.0),
        np.full(n, inf if s.grid_import_max_kw is None else s.grid_import_max_kw),
        np.where(np.isfinite(export_max), export_max, inf), pv, np.ones(n)])
    lower[e] = b.capacity_kwh * b.soc_min_pct / 100.0
    wear = b.degradation_cost_eur_mwh * dt / 1000.0
    fee = import_fee_eur_mwh(s, inputs.start, inputs.step_s, n)
    cost = np.zeros(7 * n)
    cost[c] = wear
    cost[d] = wear
    cost[imp] = (inputs.price_eur_mwh + fee) * dt / 1000.0
    cost[exp] = -(inputs.price_eur_mwh - s.tariff.export_fee_eur_mwh) * dt / 1000.0
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-10)
    h.addVars(7 * n, lower, upper)
    h.changeColsCost(7 * n, np.arange(7 * n, dtype=np.int32), cost)
    h.changeColsIntegrality(n, u.astype(np.int32),
                            np.full(n, highspy.HighsVarType.kInteger))

    def row(lo: float, hi: float, entries: dict[int, float]) -> None:
        idx = np.fromiter(entries, dtype=np.int32)
        h.addRow(lo, hi, len(idx), idx, np.array([entries[i] for i in idx]))

    for t in range(n):
        # e[t] - e[t-1] - dt*eta_c*c[t] + dt/eta_d*d[t] = 0  (e[-1] = e0 on the right)
        dyn = {int(e[t]): 1.0, int(c[t]): -dt * b.efficiency_charge,
               int(d[t]): dt / b.efficiency_discharge}
        if t:
            dyn[int(e[t - 1])] = -1.0
        rhs = e0 if t == 0 else 0.0
        row(rhs, rhs, dyn)
        # imp - exp - c + d - curt = load - pv
        net = float(inputs.load_kw[t] - pv[t])
        row(net, net, {int(imp[t]): 1.0, int(exp[t]): -1.0, int(c[t]): -1.0, int(d[t]): 1.0,
                       int(curt[t]): -1.0})
        # c <= Pc u ; d <= Pd (1 - u)
        row(-inf, 0.0, {int(c[t]): 1.0, int(u[t]): -b.power_charge_max_kw})
        row(-inf, b.power_discharge_max_kw, {int(d[t]): 1.0, int(u[t]): b.power_discharge_max_kw})
    terminal = e0 if b.soc_terminal_pct is None else b.capacity_kwh * b.soc_terminal_pct / 100
    row(terminal, inf, {int(e[n - 1]): 1.0})
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(h.getInfo().objective_function_value)


def plan_cost(s: SiteConfig, plan: Plan) -> float:
    """The same site cost recomputed from the plan's arrays."""
    dt = plan.step_s / 3600.0
    imp, exp = np.maximum(plan.grid_kw, 0), np.maximum(-plan.grid_kw, 0)
    fee = import_fee_eur_mwh(s, plan.start, plan.step_s, plan.steps)
    energy = ((plan.price_eur_mwh + fee) @ imp
              - (plan.price_eur_mwh - s.tariff.export_fee_eur_mwh) @ exp) * dt / 1000
    return float(energy) + plan.degradation_cost_eur


ARBITRAGE_CASES = [
    # (price day UTC, hours, household day, load scale, initial SoC)
    ("2020-03-14T23:00Z", 24, None, 0.0, 50.0),  # pure battery, 15-min steps
    ("2021-11-08T23:00Z", 24, None, 0.0, 30.0),
    ("2022-08-29T22:00Z", 24, "2016-08-01T22:00Z", 100.0, 50.0),  # the 2022 crisis, with site
    ("2023-07-02T22:00Z", 24, "2016-07-02T22:00Z", 300.0, 80.0),  # negative hours, big PV
    ("2023-01-09T23:00Z", 168, "2016-01-11T23:00Z", 100.0, 50.0),  # a week, 672 steps
]


@pytest.mark.parametrize(("start", "hours", "hh_start", "scale", "soc"), ARBITRAGE_CASES)
def test_arbitrage_equals_an_independent_highspy_milp(start: str, hours: int,
                                                      hh_start: str | None, scale: float,
                                                      soc: float) -> None:
    s = site(grid_export_max_kw=1500.0,
             feed_in=FeedInLimit("dynamic", rules=(FeedInRule(TimeWindow.parse("09:00-15:00"),
                                                              70.0),)),
             tariff=Tariff(import_fee_eur_mwh=30.0, export_fee_eur_mwh=2.0,
                           time_of_use=(TouRule(TimeWindow.parse("07:00-20:00"), 45.0),)))
    if hh_start is None:
        prices = quarter_hours(hourly(at_prices(), start, hours))
        zeros = np.zeros(len(prices))
        inputs = DispatchInputs(pd.Timestamp(start).to_pydatetime(), 900, prices, zeros, zeros,
                                soc)
    else:
        inputs = site_inputs(start, hours, household_start=hh_start, scale=scale, soc=soc)
    plan = Dispatcher(s).plan("arbitrage", inputs)
    reference = highspy_optimum(s, inputs)
    assert plan.objective_eur == pytest.approx(reference, rel=TOL, abs=1e-6)
    assert plan_cost(s, plan) == pytest.approx(reference, rel=TOL, abs=1e-6)


def test_arbitrage_on_the_negative_price_day_equals_the_highspy_milp() -> None:
    start, prices = negative_day()
    s = site(battery=Battery(4000, 2000, 2000, degradation_cost_eur_mwh=0.0))
    load = np.full(96, 100.0)
    inputs = DispatchInputs(start, 900, quarter_hours(prices), load, np.zeros(96), 90.0)
    plan = Dispatcher(s).plan("arbitrage", inputs)
    assert plan.method == "milp"  # the LP burned energy here; the MILP had to run
    assert plan.status == "optimal" and plan.optimality_gap_eur == 0.0
    assert plan.objective_eur == pytest.approx(highspy_optimum(s, inputs), rel=TOL)


# -- every constraint holds -------------------------------------------------------------------

def assert_feasible(s: SiteConfig, inputs: DispatchInputs, plan: Plan) -> None:
    b = s.battery
    dt = inputs.step_s / 3600.0
    c, d = plan.charge_kw, plan.discharge_kw
    assert plan.steps == inputs.steps
    assert np.all(c >= -TOL) and np.all(c <= b.power_charge_max_kw + TOL)
    assert np.all(d >= -TOL) and np.all(d <= b.power_discharge_max_kw + TOL)
    assert not np.any((c > TOL) & (d > TOL)), "charge and discharge in one step"
    assert np.all(plan.soc_pct >= b.soc_min_pct - TOL)
    assert np.all(plan.soc_pct <= b.soc_max_pct + TOL)
    energy = np.concatenate([[inputs.soc_initial_pct], plan.soc_pct]) * b.capacity_kwh / 100
    expected = energy[:-1] + dt * (b.efficiency_charge * c - d / b.efficiency_discharge)
    np.testing.assert_allclose(energy[1:], expected, atol=1e-6 * b.capacity_kwh)
    terminal = inputs.soc_initial_pct if b.soc_terminal_pct is None else b.soc_terminal_pct
    assert plan.soc_pct[-1] >= min(terminal, b.soc_max_pct) - TOL
    curt = plan.curtailment_kw
    assert np.all(curt >= -TOL) and np.all(curt <= np.maximum(inputs.pv_kw, 0) + TOL)
    np.testing.assert_allclose(plan.grid_kw, inputs.load_kw - inputs.pv_kw + curt + c - d,
                               atol=1e-6 * b.power_charge_max_kw)
    if s.grid_import_max_kw is not None:
        assert np.all(plan.grid_kw <= s.grid_import_max_kw + TOL)
    limit = export_limit_kw(s, inputs.start, inputs.step_s, inputs.steps)
    assert np.all(-plan.grid_kw <= limit + TOL)
    np.testing.assert_allclose(plan.power_kw, d - c)


FEED_IN_SITE = dict(
    grid_import_max_kw=900.0, grid_export_max_kw=1200.0,
    feed_in=FeedInLimit("dynamic", rules=(FeedInRule(TimeWindow.parse("06:00-18:00"), 70.0),
                                          FeedInRule(TimeWindow.parse("18:00-22:00"), 50.0))),
    battery=Battery(4000, 2000, 1500, efficiency_charge=0.93, efficiency_discharge=0.96,
                    soc_min_pct=15, soc_max_pct=85, soc_terminal_pct=60))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("start", "hh_start", "scale"), [
    ("2023-06-10T22:00Z", "2016-06-10T22:00Z", 200.0),  # PV surplus, feed-in limit binds
    ("2022-12-14T23:00Z", "2015-12-14T23:00Z", 150.0),  # winter load, import limit binds
])
def test_every_constraint_holds(strategy: str, start: str, hh_start: str,
                                scale: float) -> None:
    s = site(**FEED_IN_SITE)  # type: ignore[arg-type]
    inputs = site_inputs(start, 24, household_start=hh_start, scale=scale, soc=40.0)
    plan = Dispatcher(s).plan(strategy, inputs)
    assert plan.status == "optimal" and plan.strategy == strategy and plan.solver == "HIGHS"
    assert plan.solve_time_s > 0
    assert_feasible(s, inputs, plan)
    # the feed-in limit is active in this scenario: PV above 70 % of peak is curtailed or stored
    limit = export_limit_kw(s, inputs.start, inputs.step_s, inputs.steps)
    assert np.isfinite(limit).all() and limit.min() == pytest.approx(500.0)


def test_feed_in_limit_curtails_pv_when_the_battery_is_full() -> None:
    s = site(feed_in=FeedInLimit("fixed", fixed_limit_pct=30.0), pv_peak_kw=1000.0)
    inputs = site_inputs("2023-06-10T22:00Z", 24, household_start="2016-06-10T22:00Z",
                         scale=300.0, soc=90.0)
    plan = Dispatcher(s).plan("self_consumption", inputs)
    assert_feasible(s, inputs, plan)
    assert -plan.grid_kw.min() <= 300.0 + TOL
    assert plan.curtailment_kw.max() > 1.0


def test_expected_profit_is_the_market_value_of_the_schedule() -> None:
    inputs = site_inputs("2022-03-01T23:00Z", 24, household_start="2016-03-01T23:00Z")
    plan = Dispatcher(site()).plan("arbitrage", inputs)
    dt = 0.25
    value = float(inputs.price_eur_mwh @ (plan.discharge_kw - plan.charge_kw)) * dt / 1000
    wear = 5.0 * float(np.sum(plan.charge_kw + plan.discharge_kw)) * dt / 1000
    assert plan.degradation_cost_eur == pytest.approx(wear) and wear > 0
    assert plan.expected_profit_eur == pytest.approx(value - wear)
    assert plan.expected_profit_eur > 0


def test_degradation_cost_reduces_cycling() -> None:
    inputs = site_inputs("2021-05-03T22:00Z", 24, household_start="2016-05-03T22:00Z")
    cheap = Dispatcher(site(battery=Battery(4000, 2000, 2000, degradation_cost_eur_mwh=0.0)))
    dear = Dispatcher(site(battery=Battery(4000, 2000, 2000, degradation_cost_eur_mwh=40.0)))
    assert dear.plan("arbitrage", inputs).throughput_kwh < \
        cheap.plan("arbitrage", inputs).throughput_kwh


# -- what the strategies achieve on the real household profile --------------------------------

WEEKS = ["2016-01-11T23:00Z", "2016-05-02T22:00Z", "2016-07-04T22:00Z", "2016-10-03T22:00Z"]


def home_inputs(hh_start: str, price_start: str = "2021-01-04T23:00Z") -> DispatchInputs:
    return site_inputs(price_start, 168, household_start=hh_start, scale=1.0, soc=50.0)


@pytest.mark.parametrize("week", WEEKS)
def test_peak_shaving_lowers_the_peak_of_the_household(week: str) -> None:
    s = home_site()
    inputs = home_inputs(week)
    plan = Dispatcher(s).plan("peak_shaving", inputs)
    assert_feasible(s, inputs, plan)
    before = float(np.max(inputs.load_kw - inputs.pv_kw))
    after = float(np.max(plan.grid_kw))
    assert after < before - 0.5, (before, after)  # kW


@pytest.mark.parametrize("week", WEEKS[1:])  # weeks with PV
def test_self_consumption_raises_the_pv_self_consumption_ratio(week: str) -> None:
    s = home_site()
    inputs = home_inputs(week)
    plan = Dispatcher(s).plan("self_consumption", inputs)
    assert_feasible(s, inputs, plan)
    pv = inputs.pv_kw.sum()
    before = 1 - np.maximum(inputs.pv_kw - inputs.load_kw, 0).sum() / pv
    after = 1 - (np.maximum(-plan.grid_kw, 0).sum() + plan.curtailment_kw.sum()) / pv
    assert after > before + 0.03, (before, after)
    # and it never charges from the grid: grid imports only cover load
    assert np.sum(np.maximum(plan.grid_kw, 0)) < np.sum(np.maximum(
        inputs.load_kw - inputs.pv_kw, 0))


@pytest.mark.parametrize("week", WEEKS)
def test_load_balancing_lowers_the_ramps(week: str) -> None:
    s = home_site()
    inputs = home_inputs(week)
    plan = Dispatcher(s).plan("load_balancing", inputs)
    assert_feasible(s, inputs, plan)
    before = np.abs(np.diff(inputs.load_kw - inputs.pv_kw)).sum()
    after = np.abs(np.diff(plan.grid_kw)).sum()
    assert after < 0.7 * before, (before, after)
    assert plan.grid_kw.std() < (inputs.load_kw - inputs.pv_kw).std()


# -- negative prices --------------------------------------------------------------------------

@pytest.mark.parametrize("soc", [10.0, 50.0, 90.0])
@pytest.mark.parametrize("wear", [0.0, 5.0])
def test_negative_prices_never_charge_and_discharge_at_once(soc: float, wear: float) -> None:
    start, prices = negative_day()
    assert prices.min() == pytest.approx(-252.6)
    h = household()
    load = quarter_hours(hourly(h["load_kw"], "2016-05-10T22:00Z", 24)) * 100
    pv = quarter_hours(hourly(h["pv_kw"], "2016-05-10T22:00Z", 24)) * 100
    s = site(battery=Battery(4000, 2000, 2000, degradation_cost_eur_mwh=wear),
             feed_in=FeedInLimit("fixed", fixed_limit_pct=70.0), tariff=Tariff())
    inputs = DispatchInputs(start, 900, quarter_hours(prices), load, pv, soc)
    dispatcher = Dispatcher(s)
    for strategy in STRATEGIES:
        plan = dispatcher.plan(strategy, inputs)
        assert_feasible(s, inputs, plan)
        assert plan.status == "optimal", (strategy, plan.method, plan.optimality_gap_eur)
        both = (plan.charge_kw > 1e-6) & (plan.discharge_kw > 1e-6)
        assert not both.any(), (strategy, np.flatnonzero(both))


def test_the_lp_alone_would_burn_energy_on_the_negative_price_day() -> None:
    """Why the MILP exists: the LP relaxation charges and discharges at once."""
    start, prices = negative_day()
    s = site(battery=Battery(4000, 2000, 2000, degradation_cost_eur_mwh=0.0), tariff=Tariff())
    dispatcher = Dispatcher(s)
    inputs = DispatchInputs(start, 900, quarter_hours(prices), np.full(96, 100.0),
                            np.zeros(96), 90.0)
    plan = dispatcher.plan("arbitrage", inputs)
    assert plan.method != "lp"
    lp = dispatcher.problem("arbitrage", 96, 900)  # its last solve had the modes fixed
    variables = {v.name(): v for v in lp.variables()}
    for p in lp.parameters():
        if p.name() in ("charge_max_kw", "discharge_max_kw"):
            p.value = np.full(96, 2000.0)
    lp.solve(solver="HIGHS")
    c, d = variables["charge_kw"].value, variables["discharge_kw"].value
    assert np.any(np.minimum(c, d) > 1.0)
    assert lp.value < plan.objective_eur - 1.0  # burning pays, the LP takes it


# -- DPP: built once, re-solved with new parameter values ------------------------------------

def test_problems_are_dpp_and_built_once() -> None:
    dispatcher = Dispatcher(site())
    for strategy in STRATEGIES:
        for milp in (False, True):
            problem = dispatcher.problem(strategy, 96, 900, milp=milp)
            assert problem.is_dpp(), (strategy, milp)
            assert problem is dispatcher.problem(strategy, 96, 900, milp=milp)
            assert {p.name() for p in problem.parameters()} >= {
                "buy_eur_mwh", "sell_eur_mwh", "load_kw", "pv_kw", "energy_initial_kwh"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_resolve_with_new_parameters_equals_a_fresh_build(strategy: str) -> None:
    s = site()
    days = [("2023-03-05T23:00Z", "2016-03-05T23:00Z", 40.0),
            ("2022-07-17T22:00Z", "2016-07-17T22:00Z", 70.0),
            ("2020-10-20T22:00Z", "2015-10-20T22:00Z", 20.0)]
    reused = Dispatcher(s)
    problem = reused.problem(strategy, 96, 900)
    for start, hh_start, soc in days:
        inputs = site_inputs(start, 24, household_start=hh_start, soc=soc)
        again = reused.plan(strategy, inputs)
        fresh = Dispatcher(s).plan(strategy, inputs)
        assert reused.problem(strategy, 96, 900) is problem
        assert again.objective_eur == pytest.approx(fresh.objective_eur, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(again.grid_kw, fresh.grid_kw, atol=1e-6)
        np.testing.assert_allclose(again.soc_pct, fresh.soc_pct, atol=1e-6)
        assert again.soc_pct[0] != pytest.approx(days[0][2]) or start == days[0][0]


# -- inputs and errors ------------------------------------------------------------------------

def test_infeasible_import_limit_raises_with_a_reason() -> None:
    s = site(grid_import_max_kw=10.0, battery=Battery(100, 5, 5))
    inputs = site_inputs("2023-01-09T23:00Z", 24, household_start="2016-01-11T23:00Z")
    with pytest.raises(DispatchError) as info:
        Dispatcher(s).plan("arbitrage", inputs)
    assert info.value.reason == "infeasible"


def test_unknown_strategy_and_bad_inputs() -> None:
    inputs = site_inputs("2023-01-09T23:00Z", 24, household_start="2016-01-11T23:00Z")
    with pytest.raises(DispatchError) as info:
        Dispatcher(site()).plan("moonshot", inputs)
    assert info.value.reason == "unknown_strategy"
    with pytest.raises(ValueError, match="load_kw"):
        DispatchInputs(inputs.start, 900, inputs.price_eur_mwh, inputs.load_kw[:10],
                       inputs.pv_kw, 50.0)
    with pytest.raises(ValueError, match="timezone"):
        DispatchInputs(datetime(2023, 1, 1), 900, inputs.price_eur_mwh, inputs.load_kw,
                       inputs.pv_kw, 50.0)


def test_soc_outside_the_limits_is_planned_back_not_infeasible() -> None:
    s = site()
    inputs = replace(site_inputs("2023-04-11T22:00Z", 24, household_start="2016-04-11T22:00Z"),
                     soc_initial_pct=96.0)
    plan = Dispatcher(s).plan("arbitrage", inputs)
    assert plan.soc_pct.max() <= 96.0 + TOL
    assert plan.soc_pct[-1] >= 90.0 - TOL


def test_plan_all_returns_every_strategy() -> None:
    inputs = site_inputs("2023-04-11T22:00Z", 24, household_start="2016-04-11T22:00Z")
    plans = Dispatcher(site()).plan_all(inputs)
    assert list(plans) == list(STRATEGIES)
    assert {p.strategy for p in plans.values()} == set(STRATEGIES)


def test_a_milp_cut_short_still_gives_a_feasible_plan_and_says_so() -> None:
    start, prices = negative_day()
    s = site(battery=Battery(4000, 2000, 2000, degradation_cost_eur_mwh=0.0), tariff=Tariff())
    inputs = DispatchInputs(start, 900, quarter_hours(prices), np.full(96, 100.0),
                            np.zeros(96), 90.0)
    full = Dispatcher(s).plan("arbitrage", inputs)
    short = Dispatcher(s, milp_time_limit_s=1e-4).plan("arbitrage", inputs)
    assert_feasible(s, inputs, short)
    assert short.objective_eur >= full.objective_eur - 1e-6
    if short.status == "feasible":  # the heuristic's value with a certified gap
        assert short.optimality_gap_eur > 0
        assert short.objective_eur - short.optimality_gap_eur <= full.objective_eur + 1e-6
    else:
        assert short.objective_eur == pytest.approx(full.objective_eur, rel=TOL)
