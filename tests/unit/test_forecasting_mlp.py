"""The neural-network member (`domain.forecasting.mlp`) and LEAR's refit options."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from domain.forecasting import ForecastOptions, forecast
from domain.forecasting.hourly import Hourly, hour_of, to_hourly
from domain.forecasting.lear import Lear, LearAverage, _refit
from domain.forecasting.mlp import Mlp
from domain.forecasting.pipeline import lear_members
from tests.unit.forecast_checks import (
    VIENNA,
    assert_beats_the_naive_and_is_deterministic,
    assert_sees_nothing_after_the_origin_and_feeds_back,
    at_prices,
    wednesday_origin,
)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    return at_prices()


def test_mlp_beats_the_naive_and_is_deterministic(prices: pd.Series) -> None:
    assert_beats_the_naive_and_is_deterministic(Mlp(VIENNA, 364, holidays="AT"), prices)


def test_mlp_sees_nothing_after_the_origin_and_feeds_back(prices: pd.Series) -> None:
    start = wednesday_origin()
    hourly = to_hourly(prices, start + 24 * 5).since(start - 24 * 200)
    fit = Mlp(VIENNA, 180, holidays="AT", max_iter=50).fit(hourly.until(start))
    assert_sees_nothing_after_the_origin_and_feeds_back(fit, hourly, start)


def test_mlp_is_translation_and_scale_equivariant(prices: pd.Series) -> None:
    """The median/MAD normalisation: prices a + b y give forecasts a + b f."""
    start = hour_of(pd.Timestamp("2023-05-09 22:00", tz=UTC))
    hourly = to_hourly(prices, start).since(start - 24 * 120)
    model = Mlp(VIENNA, 100, holidays="AT", max_iter=50)
    base = model.fit(hourly).predict(hourly, start, 24)
    moved = Hourly(hourly.start, hourly.values * 3 + 40)
    np.testing.assert_allclose(model.fit(moved).predict(moved, start, 24), 3 * base + 40,
                               rtol=1e-6, atol=1e-6)


def test_mlp_averages_its_seeds(prices: pd.Series) -> None:
    start = hour_of(pd.Timestamp("2023-05-09 22:00", tz=UTC))
    hourly = to_hourly(prices, start).since(start - 24 * 120)
    two = Mlp(VIENNA, 100, max_iter=30, seeds=2).fit(hourly)
    assert len(two.models) == 2
    one = Mlp(VIENNA, 100, max_iter=30).fit(hourly)
    assert not np.allclose(two.predict(hourly, start, 24), one.predict(hourly, start, 24))


def test_forecast_runs_the_mlp_for_prices_only(prices: pd.Series) -> None:
    origin = datetime(2023, 6, 6, 22, tzinfo=UTC)
    opts = ForecastOptions(models=("lear", "mlp"), step_s=3600, lear_training_days=120,
                           validation_days=3)
    out = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin, options=opts)
    assert set(out) == {"seasonal_naive", "lear", "mlp", "ensemble"}
    np.testing.assert_allclose(out["ensemble"].p50,
                               (2 * out["lear"].p50 + out["mlp"].p50) / 3, rtol=1e-12)
    load = prices.rename("load") * 0 + 5000 + 100 * np.sin(np.arange(len(prices)))
    out = forecast(load, quantity="load", unit="kW", origin=origin,
                   options=ForecastOptions(step_s=3600, prophet=False, training_days=21,
                                           lear_training_days=60, validation_days=0))
    assert "mlp" not in out and "lear" in out


def test_lear_refits_of_the_selected_support() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6))
    y = x[:, 0] - 0.5 * x[:, 2] + rng.standard_t(1.5, size=400)  # heavy tails
    coef = np.array([0.6, 0.0, -0.2, 0.0, 0.0, 0.0])  # a shrunk LASSO solution
    same = _refit(x, y, coef, 0.3, "none")
    assert same[1] == 0.3 and same[0] is coef
    shifted, b = _refit(x, y, coef, 0.3, "median")
    np.testing.assert_array_equal(shifted, coef)
    assert abs(np.median(y - x @ coef - b)) < 1e-9
    ols, b_ols = _refit(x, y, coef, 0.3, "ols")
    lad, b_lad = _refit(x, y, coef, 0.3, "lad")
    for c in (ols, lad):  # only the selected inputs, no longer shrunk
        assert (c[[1, 3, 4, 5]] == 0).all() and abs(c[0]) > abs(coef[0])
    sse = [np.sum((y - x @ c - k) ** 2) for c, k in ((ols, b_ols), (lad, b_lad))]
    sae = [np.sum(np.abs(y - x @ c - k)) for c, k in ((ols, b_ols), (lad, b_lad))]
    assert sse[0] <= sse[1] and sae[1] < sae[0]


def test_lear_lag_sets_and_refit_forecast(prices: pd.Series) -> None:
    start = hour_of(pd.Timestamp("2023-05-09 22:00", tz=UTC))
    hourly = to_hourly(prices, start).since(start - 24 * 200)
    week = Lear(VIENNA, 180, lags=(1, 2, 3, 4, 5, 6, 7)).fit(hourly)
    assert week.coef.shape == (24, 24 * 7 + 7)
    assert np.isfinite(week.predict(hourly, start, 48)).all()
    base = Lear(VIENNA, 180).fit(hourly)
    ols = Lear(VIENNA, 180, refit="ols").fit(hourly)
    np.testing.assert_array_equal(ols.coef != 0, base.coef != 0)  # same support
    assert not np.allclose(ols.predict(hourly, start, 24), base.predict(hourly, start, 24))


def test_lear_options_are_validated() -> None:
    with pytest.raises(ValueError, match="refit"):
        Lear(VIENNA, refit="ridge")
    with pytest.raises(ValueError, match="lags"):
        Lear(VIENNA, lags=(0, 1))


def test_forecast_runs_the_refitted_lear(prices: pd.Series) -> None:
    origin = datetime(2023, 6, 6, 22, tzinfo=UTC)
    opts = ForecastOptions(models=("lear",), step_s=3600, lear_training_days=120,
                           validation_days=0)
    out = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin, options=opts)
    start = hour_of(pd.Timestamp(origin))
    hourly = to_hourly(prices, start).since(start - 24 * opts.history_days)
    train = hourly.since(start - 24 * 120)
    members = lear_members(120)
    refitted = LearAverage(VIENNA, members, holidays="AT", refit="ols").fit(train)
    lasso = LearAverage(VIENNA, members, holidays="AT").fit(train)
    np.testing.assert_allclose(out["lear"].p50, refitted.predict(hourly, start, 24), rtol=1e-12)
    assert not np.allclose(out["lear"].p50, lasso.predict(hourly, start, 24))


def test_lear_level_after_rolling_scaling(prices: pd.Series) -> None:
    """``level_days`` with ``norm_days``: the level of the day before is taken out after the
    rolling median/MAD scaling, so the forecast differs from the rolling member's."""
    start = hour_of(pd.Timestamp("2023-05-09 22:00", tz=UTC))
    hourly = to_hourly(prices, start).since(start - 24 * 200)
    both = Lear(VIENNA, 180, level_days=1, norm_days=7).fit(hourly)
    rolling = Lear(VIENNA, 180, norm_days=7).fit(hourly)
    pred = both.predict(hourly, start, 24)
    assert np.isfinite(pred).all()
    assert not np.allclose(pred, rolling.predict(hourly, start, 24))
    moved = Hourly(hourly.start, hourly.values * 2 + 10)  # still equivariant
    np.testing.assert_allclose(Lear(VIENNA, 180, level_days=1, norm_days=7).fit(moved)
                               .predict(moved, start, 24), 2 * pred + 10, rtol=1e-6)
