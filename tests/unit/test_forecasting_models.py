"""Prophet and LEAR on real data, clear-sky PV, the backtest and its metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from domain.forecasting import ForecastOptions, backtest, clear_sky_pv, forecast, score
from domain.forecasting.backtest import hindsight_mix
from domain.forecasting.metrics import mae, rmse, smape
from infra.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"
KONSTANZ = {"latitude": 47.66, "longitude": 9.17}  # the household of residential4


@pytest.fixture(autouse=True, scope="module")
def _quiet() -> Iterator[None]:
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    with threadpool_limits(1):
        yield


def read(path: str, column: str) -> pd.Series:
    frame = pd.read_csv(DATA / path, usecols=["timestamp_utc", column])
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    return pd.Series(frame[column].to_numpy(dtype=float), index=index).dropna()


@pytest.fixture(scope="module")
def at_load() -> pd.Series:
    return read("at_hourly_2015_2023.csv", "load_mw")


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    return read("at_hourly_2015_2023.csv", "price_eur_mwh")


# --- Prophet --------------------------------------------------------------------------------

PROPHET = ForecastOptions(models=("prophet",), step_s=3600, training_days=28, validation_days=7,
                          timezone="Europe/Vienna")


def test_prophet_beats_a_constant_on_the_daily_load_pattern(
        at_load: pd.Series, capsys: pytest.CaptureFixture[str]) -> None:
    origin = datetime(2019, 3, 12, 23, tzinfo=UTC)  # Wednesday 2019-03-13 local midnight
    out = forecast(at_load, quantity="load", unit="MW", origin=origin, options=PROPHET)
    assert capsys.readouterr().out == ""  # a Prophet fit prints nothing to stdout
    f = out["prophet"]
    actual = at_load.reindex(f.index).to_numpy()
    train = at_load[(at_load.index < origin) & (at_load.index >= f.training_start)]
    constant = np.full(24, train.mean())
    assert mae(actual, f.p50) < 0.5 * mae(actual, constant)
    assert f.training_end == origin and (f.p10 <= f.p50).all() and (f.p50 <= f.p90).all()
    assert (f.p90 - f.p10).min() > 0
    again = forecast(at_load, quantity="load", unit="MW", origin=origin, options=PROPHET)
    np.testing.assert_array_equal(again["prophet"].p50, f.p50)  # no sampling: deterministic
    np.testing.assert_array_equal(again["ensemble"].p90, out["ensemble"].p90)


def test_prophet_sees_nothing_after_the_origin(prices: pd.Series) -> None:
    origin = datetime(2023, 4, 11, 22, tzinfo=UTC)
    opts = replace(PROPHET, models=("prophet",), validation_days=0)
    a = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin, options=opts)
    later = prices.copy()
    later[later.index >= origin] = -1000.0
    b = forecast(later, quantity="price", unit="EUR/MWh", origin=origin, options=opts)
    np.testing.assert_array_equal(a["prophet"].p50, b["prophet"].p50)


# --- LEAR -----------------------------------------------------------------------------------

def test_lear_beats_the_naive_on_2023_prices(prices: pd.Series) -> None:
    opts = ForecastOptions(models=("lear",), validation_days=0)
    result = backtest(prices, quantity="price", unit="EUR/MWh", start=date(2023, 1, 2),
                      end=date(2023, 12, 31), every=19, options=opts)
    assert result.origins == 20  # every weekday, all seasons
    assert result.scores["lear"].rmae < 0.85
    assert result.scores["seasonal_naive"].rmae == 1.0
    # the hindsight mix is a ceiling: at most the MAE of each member and of their mean
    mix = hindsight_mix(result.frame, ["seasonal_naive", "lear"])
    mean = (result.frame["seasonal_naive"] + result.frame["lear"]) / 2
    assert mix.scores.mae <= result.scores["lear"].mae + 1e-6
    assert mix.scores.mae <= (result.frame["actual"] - mean).abs().mean() + 1e-6
    assert mix.scores.n == result.scores["lear"].n and mix.weights["lear"] > 0.5


# --- clear-sky PV ---------------------------------------------------------------------------

def test_clear_sky_pv_shape() -> None:
    origin = datetime(2016, 6, 21, tzinfo=UTC)
    f = clear_sky_pv(**KONSTANZ, capacity_kw=8.0, origin=origin)
    assert f.model == "clear_sky" and f.unit == "kW" and len(f) == 96 and f.step_s == 900
    assert f.training_start is None
    s = f.series()
    assert (s[s.index.hour < 2] == 0).all() and (s[s.index.hour >= 20] == 0).all()  # night
    # solar noon at 9.17 E on 21 June: 12:00 - 36.7 min - 1.7 min (equation of time) = 11:22
    peak = s.idxmax()
    assert abs(peak + pd.Timedelta(minutes=7.5) - pd.Timestamp("2016-06-21T11:22Z")) <= \
        pd.Timedelta(minutes=30)
    assert 0.6 * 8.0 < s.max() <= 8.0
    assert (f.p10 <= f.p50).all() and (f.p50 <= f.p90).all()


def test_clear_sky_pv_scales_with_capacity_and_clouds_lower_it() -> None:
    origin = datetime(2016, 6, 21, tzinfo=UTC)
    small = clear_sky_pv(**KONSTANZ, capacity_kw=4.0, origin=origin)
    big = clear_sky_pv(**KONSTANZ, capacity_kw=8.0, origin=origin)
    np.testing.assert_allclose(big.p50, 2 * small.p50)
    np.testing.assert_allclose(big.p10, 2 * small.p10)
    hours = pd.date_range("2016-06-20T12:00Z", periods=48, freq="h")
    clouds = clear_sky_pv(**KONSTANZ, capacity_kw=8.0, origin=origin,
                          cloud_cover_pct=pd.Series(80.0, index=hours))
    day = big.p50 > 0.1
    assert (clouds.p50[day] < big.p50[day]).all()
    assert clouds.p50.sum() < 0.75 * big.p50.sum()
    assert (clouds.p10 <= clouds.p50).all() and (clouds.p50 <= clouds.p90).all()
    clear = clear_sky_pv(**KONSTANZ, capacity_kw=8.0, origin=origin,
                         cloud_cover_pct=pd.Series(0.0, index=hours))
    np.testing.assert_allclose(clear.p50, big.p50)


@pytest.mark.parametrize("month", ["2019-03", "2019-06", "2019-12"])
def test_clear_sky_profile_matches_austrias_solar_generation(month: str) -> None:
    """The shape of the mean day of AT solar generation (ENTSO-E actuals) is the clear-sky shape
    of a south-facing plane in the middle of Austria; both peak in the 11:00 UTC hour."""
    solar = read("at_hourly_2015_2023.csv", "solar_mw")[month]
    measured = solar.groupby(solar.index.hour).mean().reindex(range(24), fill_value=0.0)
    model = clear_sky_pv(latitude=47.6, longitude=14.1, capacity_kw=1.0, step_s=3600,
                         origin=pd.Timestamp(f"{month}-15T00:00Z").to_pydatetime()).series()
    assert np.corrcoef(measured.to_numpy(), model.to_numpy())[0, 1] > 0.97
    assert measured.idxmax() == 11 and model.index[model.argmax()].hour in (10, 11)
    assert (model[measured.to_numpy() == 0] < 0.05).all()  # night is night in both


# --- metrics and the backtest ---------------------------------------------------------------

def test_metrics_by_hand() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.0, 2.0, 2.0, 2.0])
    naive = np.array([0.0, 0.0, 0.0, 0.0])
    assert mae(actual, pred) == 1.0
    assert rmse(actual, pred) == pytest.approx(np.sqrt((1 + 0 + 1 + 4) / 4))
    assert smape(actual, pred) == pytest.approx(100 * (2 / 3 + 0 + 2 / 5 + 4 / 6) / 4)
    assert smape(np.zeros(2), np.zeros(2)) == 0.0
    s = score(np.append(actual, np.nan), np.append(pred, 1.0), np.append(naive, 1.0),
              p10=np.array([0, 0, 0, 0, 0.0]), p90=np.array([1.5, 3, 3, 3, 1.0]))
    assert s.n == 4 and s.mae == 1.0 and s.rmae == pytest.approx(1.0 / 2.5)
    assert s.coverage == 0.75


def test_backtest_rows_and_scores(prices: pd.Series) -> None:
    # Sat 25 .. Mon 27 March 2023: 24 + 23 (DST) + 24 hours, naive only
    opts = ForecastOptions(models=(), prophet=False, validation_days=7)
    r = backtest(prices, quantity="price", unit="EUR/MWh", start=date(2023, 3, 25),
                 end=date(2023, 3, 27), options=opts)
    assert r.origins == 3 and len(r.frame) == 71
    assert r.frame.index.is_unique
    week_before = prices.reindex(r.frame.index[:24] - pd.Timedelta(days=7)).to_numpy()
    np.testing.assert_array_equal(r.frame["seasonal_naive"].to_numpy()[:24], week_before)
    s = r.scores["seasonal_naive"]
    err = r.frame["actual"] - r.frame["seasonal_naive"]
    assert s.n == 71 and s.mae == pytest.approx(err.abs().mean()) and s.rmae == 1.0
    assert s.rmse == pytest.approx(np.sqrt((err**2).mean()))


def test_backtest_autumn_dst_day_has_25_hours(prices: pd.Series) -> None:
    opts = ForecastOptions(models=(), prophet=False, validation_days=7)
    r = backtest(prices, quantity="price", unit="EUR/MWh", start=date(2023, 10, 28),
                 end=date(2023, 10, 30), options=opts)
    assert r.origins == 3 and len(r.frame) == 24 + 25 + 24
    assert r.frame["origin"].value_counts().sort_index().tolist() == [24, 25, 24]


def test_backtest_skips_missing_days(prices: pd.Series) -> None:
    opts = ForecastOptions(models=(), prophet=False, validation_days=7)
    r = backtest(prices, quantity="price", unit="EUR/MWh", start=date(2022, 11, 29),
                 end=date(2022, 12, 1), options=opts)  # 2022-11-30 is missing in the data
    assert r.origins == 2 and len(r.frame) == 48


def test_hindsight_mix_recovers_a_known_mix() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(50, 20, 500), rng.normal(80, 30, 500)
    actual = 0.3 * a + 0.7 * b + 2.0
    actual[::50] += rng.normal(0, 40, 10)  # outliers: LAD keeps the mix, least squares would not
    frame = pd.DataFrame({"actual": actual, "seasonal_naive": a + 5, "a": a, "b": b})
    frame.loc[3, "b"] = np.nan  # an hour without every member is left out
    mix = hindsight_mix(frame, ["a", "b"])
    assert mix.weights == pytest.approx({"a": 0.3, "b": 0.7}, abs=1e-6)
    assert mix.intercept == pytest.approx(2.0, abs=1e-5)
    assert mix.scores.n == 499
    with pytest.raises(ValueError, match="unknown members"):
        hindsight_mix(frame, ["a", "c"])
    with pytest.raises(ValueError, match="at least one member"):
        hindsight_mix(frame, [])


def test_backtest_command_prints_the_table() -> None:
    from typer.testing import CliRunner

    from infra.cli import app

    result = CliRunner().invoke(app, ["forecast", "backtest", "--start", "2023-03-25", "--end",
                                      "2023-03-26", "--models", "", "--validation-days", "7"])
    assert result.exit_code == 0, result.output
    assert "2 day-ahead origins at local midnight (Europe/Vienna)" in result.output
    assert "| seasonal_naive | 47 |" in result.output and "| 1.000 |" in result.output
    assert "Ceiling for any weighting of the members: rMAE " in result.output
