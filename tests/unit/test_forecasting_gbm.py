"""The gradient-boosted member (`domain.forecasting.gbm`) and the equal-weight ensemble."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from domain.forecasting import ForecastOptions, forecast
from domain.forecasting.gbm import GbmModel
from domain.forecasting.hourly import hour_of, to_hourly
from domain.forecasting.naive import SeasonalNaive
from domain.forecasting.pipeline import equal_weights, gbm_model
from infra.settings import PROJECT_ROOT

AT_CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"
VIENNA = "Europe/Vienna"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    frame = pd.read_csv(AT_CSV, usecols=["timestamp_utc", "price_eur_mwh"])
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    return pd.Series(frame["price_eur_mwh"].to_numpy(dtype=float), index=index).dropna()


def test_gbm_beats_the_naive_and_is_deterministic(prices: pd.Series) -> None:
    model = gbm_model(VIENNA, "AT", 364)
    errors, naive_errors = [], []
    first = None
    for k in range(0, 28, 4):  # seven local midnights, every weekday once
        origin = pd.Timestamp(datetime(2023, 3, 1)).tz_localize(VIENNA) + pd.Timedelta(days=k)
        start = hour_of(origin.tz_convert(UTC))
        hourly = to_hourly(prices, start).since(start - 24 * 380)
        pred = model.fit(hourly).predict(hourly, start, 24)
        actual = to_hourly(prices, start + 24).at(np.arange(start, start + 24))
        naive = SeasonalNaive("price", VIENNA).predict(hourly, start, 24)
        assert pred.shape == (24,) and np.isfinite(pred).all()
        errors.append(np.abs(actual - pred).mean())
        naive_errors.append(np.abs(actual - naive).mean())
        if first is None:
            first = (hourly, start, pred)
    assert np.mean(errors) < 0.9 * np.mean(naive_errors)
    hourly, start, pred = first
    np.testing.assert_array_equal(model.fit(hourly).predict(hourly, start, 24), pred)


def test_gbm_sees_nothing_after_the_origin_and_feeds_back(prices: pd.Series) -> None:
    start = hour_of(pd.Timestamp("2023-05-09 22:00", tz=UTC))  # Wednesday local midnight
    hourly = to_hourly(prices, start + 24 * 5).since(start - 24 * 200)
    fit = GbmModel(VIENNA, 180, holidays="AT", max_iter=30).fit(hourly.until(start))
    two_days = fit.predict(hourly, start, 48)
    changed = hourly.until(start).extended(start, hourly.values[start - hourly.start:] * 5 + 99)
    np.testing.assert_array_equal(fit.predict(changed, start, 48), two_days)
    np.testing.assert_array_equal(fit.predict(hourly, start, 24), two_days[:24])
    assert np.ptp(two_days[24:]) > 1.0  # the second day is a forecast of its own, not flat


def test_equal_weights_count_members() -> None:
    w = equal_weights({"seasonal_naive": 1, "lear": 2, "prophet": 1, "gbm": 1})
    assert w == pytest.approx({"seasonal_naive": 0.0, "lear": 0.5, "prophet": 0.25, "gbm": 0.25})
    assert equal_weights({"seasonal_naive": 1}) == {"seasonal_naive": 1.0}
    with pytest.raises(ValueError, match="ensemble"):
        ForecastOptions(ensemble="median")


def test_ensemble_is_the_member_mean(prices: pd.Series) -> None:
    origin = datetime(2023, 6, 6, 22, tzinfo=UTC)
    opts = ForecastOptions(models=("lear", "gbm"), step_s=3600, lear_training_days=120,
                           validation_days=7)
    out = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin, options=opts)
    assert set(out) == {"seasonal_naive", "lear", "gbm", "ensemble"}
    np.testing.assert_allclose(out["ensemble"].p50,
                               (2 * out["lear"].p50 + out["gbm"].p50) / 3, rtol=1e-12)
    assert out["seasonal_naive"].weight == 0.0 and out["lear"].weight == pytest.approx(2 / 3)
    old = forecast(prices, quantity="price", unit="EUR/MWh", origin=origin,
                   options=ForecastOptions(models=("lear", "gbm"), step_s=3600,
                                           lear_training_days=120, validation_days=7,
                                           ensemble="inverse_mae"))
    assert old["seasonal_naive"].weight is not None
    assert not np.allclose(old["ensemble"].p50, out["ensemble"].p50)
