"""Checks shared by the tests of the day-ahead price members (GBM, MLP): the shipped AT prices,
beating the seasonal naive deterministically, and no look-ahead with recursive feedback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from domain.forecasting.hourly import Hourly, hour_of, to_hourly
from domain.forecasting.naive import SeasonalNaive
from infra.settings import PROJECT_ROOT

AT_CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"
VIENNA = "Europe/Vienna"


def at_prices() -> pd.Series:
    """AT day-ahead prices of the shipped file, EUR/MWh, indexed by UTC hour (gaps dropped)."""
    frame = pd.read_csv(AT_CSV, usecols=["timestamp_utc", "price_eur_mwh"])
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    return pd.Series(frame["price_eur_mwh"].to_numpy(dtype=float), index=index).dropna()


def assert_beats_the_naive_and_is_deterministic(model: Any, prices: pd.Series) -> None:
    """`model` (``fit(hourly)`` returning an object with ``predict(hourly, start, hours)``),
    fitted at seven local midnights of March 2023 (every weekday once), has a mean absolute
    error below 0.9 of the seasonal naive's, and refitting gives the same forecast."""
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
    assert first is not None
    hourly, start, pred = first
    np.testing.assert_array_equal(model.fit(hourly).predict(hourly, start, 24), pred)


def wednesday_origin() -> int:
    """The hour (`hour_of`) of a Wednesday local midnight, 2023-05-10 Europe/Vienna."""
    return hour_of(pd.Timestamp("2023-05-09 22:00", tz=UTC))


def assert_sees_nothing_after_the_origin_and_feeds_back(fit: Any, hourly: Hourly,
                                                        start: int) -> None:
    """A model `fit` on history up to `start` forecasts 48 hours from it: the values at and
    after `start` in the input change nothing, the first day equals a 24-hour forecast, and
    the second day, fed from the first, is not flat."""
    two_days = fit.predict(hourly, start, 48)
    changed = hourly.until(start).extended(start, hourly.values[start - hourly.start:] * 5 + 99)
    np.testing.assert_array_equal(fit.predict(changed, start, 48), two_days)
    np.testing.assert_array_equal(fit.predict(hourly, start, 24), two_days[:24])
    assert np.ptp(two_days[24:]) > 1.0  # the second day is a forecast of its own, not flat
