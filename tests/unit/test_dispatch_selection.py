"""domain.dispatch selection: the common score, the switch threshold, the ML selector (trained and
checked on plans of the real AT prices and the real household profile)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from domain.dispatch import (
    Battery,
    Dispatcher,
    DispatchInputs,
    FeedInLimit,
    MlSelector,
    Plan,
    SiteConfig,
    Tariff,
    score,
    select_strategy,
)
from schemas.ems import STRATEGIES

DATA = Path(__file__).resolve().parents[2] / "data"


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


def site(**changes: object) -> SiteConfig:
    base = SiteConfig(
        site_id="site-1", name="Wien", price_market="EPEX_AT_DAY_AHEAD_60MIN",
        trading_market="EPEX_AT_INTRADAY_15MIN", bidding_zone="AT", latitude=48.2082,
        longitude=16.3738, pv_peak_kw=800.0, battery=Battery(1000.0, 500.0, 500.0),
        grid_import_max_kw=3000.0, grid_export_max_kw=3000.0, feed_in=FeedInLimit(),
        tariff=Tariff(import_fee_eur_mwh=20.0, demand_charge_eur_kw=0.1),
        selection_mode="auto", manual_strategy="arbitrage")
    return replace(base, **changes)  # type: ignore[arg-type]


def day_inputs(day: pd.Timestamp, household_day: pd.Timestamp, scale: float = 100.0,
               soc: float = 50.0) -> DispatchInputs | None:
    """One day of hourly AT prices with one day of the household (x scale); None on gaps."""
    prices = at_prices()[day: day + pd.Timedelta(hours=23)]
    h = household()[household_day: household_day + pd.Timedelta(hours=23)]
    if len(prices) != 24 or len(h) != 24:
        return None
    return DispatchInputs(day.to_pydatetime(), 3600, prices.to_numpy(dtype=float),
                          h["load_kw"].to_numpy(dtype=float) * scale,
                          h["pv_kw"].to_numpy(dtype=float) * scale, soc)


def same_day_of_household(day: pd.Timestamp) -> pd.Timestamp:
    """The household day with the same month and day (its data: 2015-10-12 .. 2017-02-08)."""
    year = 2015 if day.month >= 10 else 2016
    candidate = pd.Timestamp(year=year, month=day.month, day=min(day.day, 28), hour=day.hour,
                             tz="UTC")
    return candidate if candidate >= pd.Timestamp("2015-10-12", tz="UTC") \
        else candidate + pd.Timedelta(days=366)


# -- select_strategy --------------------------------------------------------------------------

SCORES = {"arbitrage": 100.0, "peak_shaving": 110.0, "self_consumption": 120.0,
          "load_balancing": 50.0}


@pytest.mark.parametrize(("current", "scores", "threshold", "expected"), [
    (None, SCORES, 0.15, "self_consumption"),           # no current: the best
    ("arbitrage", SCORES, 0.15, "self_consumption"),    # +20 % > 15 %: switch
    ("arbitrage", SCORES, 0.25, "arbitrage"),           # +20 % <= 25 %: keep
    ("peak_shaving", SCORES, 0.15, "peak_shaving"),     # +9.1 %: keep
    ("load_balancing", SCORES, 0.15, "self_consumption"),
    ("self_consumption", SCORES, 0.15, "self_consumption"),  # already the best
    ("arbitrage", {"arbitrage": 100.0, "peak_shaving": 115.0}, 0.15, "arbitrage"),  # = 15 %
    ("arbitrage", {"arbitrage": -10.0, "peak_shaving": -8.0}, 0.15, "peak_shaving"),  # +20 %
    ("arbitrage", {"arbitrage": 0.0, "peak_shaving": 0.01}, 0.15, "peak_shaving"),
    ("moonshot", SCORES, 0.15, "self_consumption"),     # unknown current: the best
])
def test_select_switches_only_when_the_gain_exceeds_the_threshold(
        current: str | None, scores: dict[str, float], threshold: float,
        expected: str) -> None:
    strategy, reason = select_strategy(current, scores, threshold)
    assert strategy == expected
    assert reason


def test_select_explains_itself() -> None:
    assert "threshold 15%" in select_strategy("arbitrage", SCORES, 0.15)[1]
    assert select_strategy("arbitrage", SCORES, 0.25)[1].startswith("kept arbitrage")
    with pytest.raises(ValueError):
        select_strategy(None, {}, 0.15)


# -- score ------------------------------------------------------------------------------------

def idle_plan(inputs: DispatchInputs) -> Plan:
    zeros = np.zeros(inputs.steps)
    return Plan("arbitrage", "optimal", "none", 0.0, 0.0, 0.0, 0.0, inputs.start,
                inputs.step_s, zeros, zeros, np.full(inputs.steps, inputs.soc_initial_pct),
                inputs.load_kw - inputs.pv_kw, inputs.price_eur_mwh, inputs.load_kw,
                inputs.pv_kw)


def test_score_is_the_saving_against_no_battery() -> None:
    s = site()
    inputs = day_inputs(pd.Timestamp("2022-06-14", tz="UTC"), pd.Timestamp("2016-06-14",
                                                                           tz="UTC"))
    assert inputs is not None
    plans = Dispatcher(s).plan_all(inputs)
    scores = score({**plans, "idle": idle_plan(inputs)}, s)
    assert scores["idle"] == pytest.approx(0.0, abs=1e-9)
    # recompute one by hand: energy with fees, demand charge, degradation
    plan = plans["peak_shaving"]
    imp, exp = np.maximum(plan.grid_kw, 0), np.maximum(-plan.grid_kw, 0)
    imp0, exp0 = np.maximum(inputs.load_kw - inputs.pv_kw, 0), np.maximum(
        inputs.pv_kw - inputs.load_kw, 0)
    price = inputs.price_eur_mwh

    def cost(i: np.ndarray, e: np.ndarray) -> float:
        return float((price + 20) @ i - price @ e) / 1000 + 0.1 * float(i.max())

    assert scores["peak_shaving"] == pytest.approx(
        cost(imp0, exp0) - cost(imp, exp) - plan.degradation_cost_eur)


@pytest.mark.parametrize("day", ["2021-02-03", "2022-08-22", "2023-05-14"])
def test_without_a_demand_charge_arbitrage_scores_best(day: str) -> None:
    """Arbitrage minimises exactly the score's cost when there is no demand charge."""
    s = site(tariff=Tariff(import_fee_eur_mwh=20.0))
    ts = pd.Timestamp(day, tz="UTC")
    inputs = day_inputs(ts, same_day_of_household(ts))
    assert inputs is not None
    scores = score(Dispatcher(s).plan_all(inputs), s)
    assert max(scores, key=lambda k: scores[k]) == "arbitrage"
    assert scores["arbitrage"] > 0


def test_a_demand_charge_makes_peak_shaving_win_on_a_calm_day() -> None:
    s = site(tariff=Tariff(import_fee_eur_mwh=20.0, demand_charge_eur_kw=2.0))
    ts = pd.Timestamp("2020-05-24", tz="UTC")  # a calm 2020 Sunday
    inputs = day_inputs(ts, same_day_of_household(ts))
    assert inputs is not None
    scores = score(Dispatcher(s).plan_all(inputs), s)
    assert scores["peak_shaving"] > scores["arbitrage"]
    strategy, _ = select_strategy("arbitrage", scores, 0.15)
    assert strategy in ("peak_shaving", "self_consumption", "load_balancing")


# -- the ML selector --------------------------------------------------------------------------

@cache
def labelled_history() -> tuple[np.ndarray, np.ndarray]:
    """Features and best strategy (by `score`) of 250 random real days, 2020-2023, for a site
    whose demand charge makes arbitrage and peak shaving close competitors."""
    s = site(tariff=Tariff(import_fee_eur_mwh=20.0, demand_charge_eur_kw=0.05))
    dispatcher, selector = Dispatcher(s), MlSelector()
    rng = np.random.default_rng(1)
    days = pd.date_range("2020-01-02", "2023-12-30", freq="D", tz="UTC")
    x, y = [], []
    for day in rng.choice(days, 250, replace=False):
        ts = pd.Timestamp(day)
        inputs = day_inputs(ts, same_day_of_household(ts), soc=float(rng.uniform(20, 80)))
        if inputs is None:
            continue
        scores = score(dispatcher.plan_all(inputs), s)
        x.append(selector.features(inputs, s))
        y.append(max(scores, key=lambda k: scores[k]))
    return np.array(x), np.array(y)


def test_ml_selector_falls_back_until_it_has_enough_history() -> None:
    x, y = labelled_history()
    selector = MlSelector(min_samples=100)
    assert not selector.ready and selector.predict(x[0]) is None
    for row, label in zip(x[:99], y[:99], strict=True):
        selector.observe(row, str(label))
    assert not selector.ready and selector.predict(x[0]) is None
    selector.observe(x[99], str(y[99]))
    assert selector.ready and selector.samples == 100
    assert selector.predict(x[0]) in STRATEGIES


def test_ml_selector_predicts_held_out_days_better_than_chance() -> None:
    x, y = labelled_history()
    counts = Counter(y.tolist())
    assert len(counts) >= 3, counts  # a real choice, not one label
    order = np.random.default_rng(7).permutation(len(y))
    train, test = order[: int(0.7 * len(y))], order[int(0.7 * len(y)):]
    selector = MlSelector(min_samples=100)
    for i in train:
        selector.observe(x[i], str(y[i]))
    predicted = np.array([selector.predict(x[i]) for i in test])
    accuracy = float(np.mean(predicted == y[test]))
    majority = Counter(y[train].tolist()).most_common(1)[0][0]
    baseline = float(np.mean(y[test] == majority))  # always the most frequent label
    assert accuracy > baseline + 0.1, (accuracy, baseline, counts)
    assert accuracy > 1 / len(STRATEGIES)


def test_ml_selector_features_and_state_round_trip() -> None:
    x, y = labelled_history()
    assert x.shape[1] == len(MlSelector.FEATURES)
    assert np.isfinite(x).all()
    selector = MlSelector(min_samples=10)
    for row, label in zip(x[:20], y[:20], strict=True):
        selector.observe(row, str(label))
    again = MlSelector.from_dict(selector.to_dict())
    assert again.samples == 20 and again.ready
    assert [again.predict(r) for r in x[20:40]] == [selector.predict(r) for r in x[20:40]]
    with pytest.raises(ValueError):
        selector.observe([1.0, 2.0], "arbitrage")


def test_ml_selector_keeps_the_newest_samples() -> None:
    selector = MlSelector(min_samples=2, max_samples=3)
    row = np.zeros(len(MlSelector.FEATURES))
    for label in ("arbitrage", "peak_shaving", "self_consumption", "load_balancing"):
        selector.observe(row, label)
    assert selector.samples == 3
    assert selector.to_dict()["y"] == ["peak_shaving", "self_consumption", "load_balancing"]
