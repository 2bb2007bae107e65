"""Forecasting on the real data shipped in data/: naive rule, DST, look-ahead, determinism,
quantiles, grids, ensemble. Prophet only where it is the subject (test_forecasting_prophet.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from domain.forecasting import Forecast, ForecastOptions, best, ensemble_weights, forecast
from domain.forecasting.hourly import hour_of, to_hourly, to_local_grid
from infra.settings import PROJECT_ROOT

AT_CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"
FAST = ForecastOptions(prophet=False, step_s=3600, lear_training_days=120, validation_days=7)
VIENNA = "Europe/Vienna"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> Iterator[None]:
    """Small least-squares problems: BLAS threads only contend on a 2-core machine."""
    with threadpool_limits(1):
        yield


def read(column: str) -> pd.Series:
    frame = pd.read_csv(AT_CSV, usecols=["timestamp_utc", column])
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    return pd.Series(frame[column].to_numpy(dtype=float), index=index).dropna()


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    return read("price_eur_mwh")


@pytest.fixture(scope="module")
def load() -> pd.Series:
    return read("load_mw")


def midnight(day: str) -> datetime:
    """Local midnight in Vienna as an aware UTC datetime."""
    return pd.Timestamp(day).tz_localize(VIENNA).tz_convert("UTC").to_pydatetime()


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def naive_only(horizon_s: int = 86400, step_s: int = 3600) -> ForecastOptions:
    return replace(FAST, models=(), horizon_s=horizon_s, step_s=step_s)


# --- seasonal naive: Lago et al. 2021 rule --------------------------------------------------

@pytest.mark.parametrize(("day", "lag_days"), [
    ("2023-03-13", 7),  # Monday: one week before
    ("2023-03-14", 1),  # Tuesday: day before
    ("2023-03-17", 1),  # Friday
    ("2023-03-18", 7),  # Saturday
    ("2023-03-19", 7),  # Sunday
])
def test_price_naive_is_the_lagged_day(prices: pd.Series, day: str, lag_days: int) -> None:
    origin = midnight(day)
    f = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                 options=naive_only())["seasonal_naive"]
    # no DST change in these two weeks: the same local hour is 24 h x lag_days earlier
    expected = prices.reindex(f.index - pd.Timedelta(days=lag_days)).to_numpy()
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(f.p50, expected)
    assert f.index[0] == pd.Timestamp(origin) and len(f.index) == 24


def test_load_naive_is_one_week_before(load: pd.Series) -> None:
    origin = midnight("2019-05-15")  # Wednesday: still the week-old value for load
    f = forecast(load, quantity="load", unit="MW", origin=origin,
                 options=naive_only())["seasonal_naive"]
    np.testing.assert_array_equal(f.p50, load.reindex(f.index - pd.Timedelta(days=7)).to_numpy())


def test_naive_on_spring_dst_day_uses_same_local_hours(prices: pd.Series) -> None:
    # Sunday 2023-03-26 has 23 local hours; the rule takes Sunday 2023-03-19 (24 h, CET)
    origin = midnight("2023-03-26")
    f = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                 options=naive_only(horizon_s=23 * 3600))["seasonal_naive"]
    assert f.index[0] == utc("2023-03-25T23:00") and len(f) == 23
    src = [utc("2023-03-18T23:00"), utc("2023-03-19T00:00")]  # local 00:00, 01:00 CET
    src += [utc("2023-03-19T02:00") + pd.Timedelta(hours=k) for k in range(21)]  # 03:00 ..
    np.testing.assert_array_equal(f.p50, prices.reindex(pd.DatetimeIndex(src)).to_numpy())


def test_naive_on_autumn_dst_day_repeats_the_double_hour(prices: pd.Series) -> None:
    # Sunday 2023-10-29 has 25 local hours (02:00 twice); the source Sunday 10-22 is all CEST
    origin = midnight("2023-10-29")
    f = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                 options=naive_only(horizon_s=25 * 3600))["seasonal_naive"]
    assert len(f) == 25
    src = [utc("2023-10-21T22:00"), utc("2023-10-21T23:00"), utc("2023-10-22T00:00"),
           utc("2023-10-22T00:00")]  # 00, 01, 02 CEST, 02 CET <- 02:00 CEST of 10-22
    src += [utc("2023-10-22T01:00") + pd.Timedelta(hours=k) for k in range(21)]  # 03:00 ..
    np.testing.assert_array_equal(f.p50, prices.reindex(pd.DatetimeIndex(src)).to_numpy())


def test_naive_falls_back_over_a_missing_day(prices: pd.Series) -> None:
    # 2022-09-03 (Saturday) is missing in the data; Sunday 09-04 wants 08-28, Tuesday 09-06
    # wants Monday 09-05; the Saturday 09-10 wants 09-03 (missing) -> the day before (09-09)
    origin = midnight("2022-09-10")
    f = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                 options=naive_only())["seasonal_naive"]
    missing = pd.date_range(pd.Timestamp(midnight("2022-09-03")), periods=24, freq="h")
    assert prices.reindex(missing).isna().all()
    np.testing.assert_array_equal(f.p50, prices.reindex(f.index - pd.Timedelta(days=1)))


def test_recursive_naive_beyond_one_day(prices: pd.Series) -> None:
    # Wednesday origin, 48 h: Thursday's naive is Wednesday's naive = Tuesday's actuals
    origin = midnight("2023-05-17")
    f = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                 options=naive_only(horizon_s=2 * 86400))["seasonal_naive"]
    np.testing.assert_array_equal(f.p50[24:], f.p50[:24])


# --- grid, inputs ---------------------------------------------------------------------------

def test_quarter_hour_steps_hold_the_hourly_value(prices: pd.Series) -> None:
    origin = midnight("2023-06-07") + timedelta(minutes=15)  # not on the hour
    f = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                 options=naive_only(step_s=900))["seasonal_naive"]
    assert len(f) == 96 and f.step_s == 900 and f.index[0] == pd.Timestamp(origin)
    hourly = prices.reindex(f.index.floor("h") - pd.Timedelta(days=1)).to_numpy()
    np.testing.assert_array_equal(f.p50[:95], hourly[:95])
    assert f.p50[95] == f.p50[0]  # next day 00:00: recursive, Wednesday's forecast
    assert f.p50[0] == f.p50[1] == f.p50[2] and f.p50[2] != f.p50[3]  # 00:15 .. 00:45, 01:00


def test_finer_history_is_averaged_into_hours(prices: pd.Series) -> None:
    origin = midnight("2023-06-07")
    hist = prices[: pd.Timestamp(origin)].iloc[-24 * 30:]
    quarter = hist.resample("15min").ffill()
    quarter = quarter + np.tile([-1.0, 1.0, -2.0, 2.0], len(quarter) // 4 + 1)[: len(quarter)]
    a = forecast(hist, quantity="price", unit="EUR/MWh", origin=origin, options=naive_only())
    b = forecast(quarter, quantity="price", unit="EUR/MWh", origin=origin, options=naive_only())
    np.testing.assert_allclose(a["seasonal_naive"].p50, b["seasonal_naive"].p50)


def test_bad_inputs() -> None:
    empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    with pytest.raises(ValueError, match="empty"):
        forecast(empty, quantity="price", unit="EUR/MWh", origin=datetime(2023, 1, 1, tzinfo=UTC))
    s = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2023-01-01", "2023-01-02"], tz="UTC"))
    with pytest.raises(ValueError, match="naive"):
        forecast(s, quantity="price", unit="EUR/MWh", origin=datetime(2023, 1, 3))
    with pytest.raises(ValueError, match="quantity"):
        forecast(s, quantity="wind", unit="MW", origin=datetime(2023, 1, 3, tzinfo=UTC))
    with pytest.raises(ValueError, match="ordered"):
        Forecast("price", "x", "EUR/MWh", pd.date_range("2023-01-01", periods=2, freq="h",
                                                       tz="UTC"),
                 np.array([2.0, 0.0]), np.array([1.0, 0.0]), np.array([3.0, 0.0]), None, None)


def test_short_history_gives_only_the_naive(prices: pd.Series) -> None:
    origin = midnight("2023-06-07")
    hist = prices[: pd.Timestamp(origin)].iloc[-24 * 10:]
    out = forecast(hist, quantity="price", unit="EUR/MWh", origin=origin, options=FAST)
    assert set(out) == {"seasonal_naive"}
    assert best(out) is out["seasonal_naive"]


# --- the full model set: quantiles, look-ahead, determinism, ensemble ----------------------

@pytest.fixture(scope="module")
def june(prices: pd.Series) -> dict[str, Forecast]:
    return forecast(prices, quantity="price", unit="EUR/MWh", origin=midnight("2023-06-07"),
                    options=FAST)


def test_models_and_quantiles(june: dict[str, Forecast]) -> None:
    assert set(june) == {"seasonal_naive", "lear", "gbm", "ensemble"}  # profile: load, PV
    for f in june.values():
        assert f.p10.dtype == np.float64 and len(f) == 24 and f.unit == "EUR/MWh"
        assert (f.p10 <= f.p50).all() and (f.p50 <= f.p90).all()
        assert (f.p90 - f.p10).mean() > 1.0  # a real spread, from real residuals
        assert f.training_end is not None and f.training_end <= midnight("2023-06-07")
    assert june["lear"].training_start == pd.Timestamp(midnight("2023-06-07")) - pd.Timedelta(
        days=120)
    assert best(june) is june["ensemble"]
    weights = {k: f.weight for k, f in june.items() if k != "ensemble"}
    assert sum(w or 0.0 for w in weights.values()) == pytest.approx(1.0)


def test_no_look_ahead(prices: pd.Series, june: dict[str, Forecast]) -> None:
    origin = pd.Timestamp(midnight("2023-06-07"))
    changed = prices.copy()
    changed[changed.index >= origin] = changed[changed.index >= origin] * 10 + 500
    changed = changed.drop(changed.index[changed.index >= origin + pd.Timedelta(days=3)])
    again = forecast(changed, quantity="price", unit="EUR/MWh", origin=origin.to_pydatetime(),
                     options=FAST)
    for name, f in june.items():
        for q in ("p10", "p50", "p90"):
            np.testing.assert_array_equal(getattr(again[name], q), getattr(f, q), err_msg=name)


def test_deterministic(prices: pd.Series, june: dict[str, Forecast]) -> None:
    again = forecast(prices, quantity="price", unit="EUR/MWh", origin=midnight("2023-06-07"),
                     options=FAST)
    for name, f in june.items():
        np.testing.assert_array_equal(again[name].p50, f.p50)
        np.testing.assert_array_equal(again[name].p90, f.p90)


def test_pv_is_never_negative() -> None:
    frame = pd.read_csv(PROJECT_ROOT / "data" / "household_residential4_hourly.csv",
                        usecols=["timestamp_utc", "pv_kw"])
    pv = pd.Series(frame["pv_kw"].to_numpy(dtype=float),
                   index=pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True)))
    out = forecast(pv, quantity="pv", unit="kW", origin=datetime(2016, 5, 2, 22, tzinfo=UTC),
                   options=replace(FAST, timezone="Europe/Berlin", lear_training_days=60))
    assert {"seasonal_naive", "profile", "lear", "ensemble"} <= set(out)
    for f in out.values():
        assert (f.p10 >= 0).all()
        assert f.p90[:3].max() < 1e-9, f.model  # local midnight .. 03:00: night, no spread
        assert f.p90.max() > 1.0


def test_ensemble_weights_rule() -> None:
    w = ensemble_weights({"a": 1.0, "b": 1.05, "c": 1.2, "d": None})
    assert w["a"] == pytest.approx(1.05 / 2.05) and w["b"] == pytest.approx(1 / 2.05)
    assert w["c"] == 0.0 and w["d"] == 0.0  # c: more than 1.1 x the best MAE
    assert ensemble_weights({"a": None, "b": None}) == {"a": 0.5, "b": 0.5}


def test_local_grid_has_24_hours_every_local_day(prices: pd.Series) -> None:
    spring = prices[pd.Timestamp(midnight("2023-03-26")): pd.Timestamp(midnight("2023-03-27"))]
    autumn = prices[pd.Timestamp(midnight("2023-10-29")): pd.Timestamp(midnight("2023-10-30"))]
    spring, autumn = spring.iloc[:-1], autumn.iloc[:-1]  # the slice end is inclusive
    assert (len(spring), len(autumn)) == (23, 25)
    for day in (spring, autumn):
        grid = to_local_grid(to_hourly(day, hour_of(day.index[-1]) + 1), VIENNA)
        assert len(grid.values) == 24 and grid.start % 24 == 0  # local midnight .. 23:00
    s = to_local_grid(to_hourly(spring, hour_of(spring.index[-1]) + 1), VIENNA).values
    assert s[2] == pytest.approx((s[1] + s[3]) / 2)  # 02:00 does not exist: neighbours' mean
    np.testing.assert_array_equal(np.delete(s, 2), spring.to_numpy())
    a = to_local_grid(to_hourly(autumn, hour_of(autumn.index[-1]) + 1), VIENNA).values
    assert a[2] == autumn.iloc[2:4].mean()  # 02:00 twice: the mean (the data repeats it)


def test_lear_on_dst_days_follows_the_local_clock(prices: pd.Series) -> None:
    opts = replace(FAST, models=("lear",), validation_days=0)
    spring = forecast(prices, quantity="price", unit="EUR/MWh", origin=midnight("2023-03-26"),
                      options=replace(opts, horizon_s=23 * 3600))["lear"]
    autumn = forecast(prices, quantity="price", unit="EUR/MWh", origin=midnight("2023-10-29"),
                      options=replace(opts, horizon_s=25 * 3600))["lear"]
    assert len(spring) == 23 and len(autumn) == 25
    assert autumn.p50[2] == autumn.p50[3]  # both UTC hours are local 02:00
    assert len(set(autumn.p50.tolist())) == 24
