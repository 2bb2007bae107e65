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
from domain.forecasting.hourly import to_hourly
from domain.forecasting.pipeline import equal_weights, gbm_model
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


def test_gbm_beats_the_naive_and_is_deterministic(prices: pd.Series) -> None:
    assert_beats_the_naive_and_is_deterministic(gbm_model(VIENNA, "AT", 364), prices)


def test_gbm_sees_nothing_after_the_origin_and_feeds_back(prices: pd.Series) -> None:
    start = wednesday_origin()
    hourly = to_hourly(prices, start + 24 * 5).since(start - 24 * 200)
    fit = GbmModel(VIENNA, 180, holidays="AT", max_iter=30).fit(hourly.until(start))
    assert_sees_nothing_after_the_origin_and_feeds_back(fit, hourly, start)


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
