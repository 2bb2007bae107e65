"""Seasonal naive and profile forecasts: values of the same local hour on earlier days.

`SeasonalNaive` for day-ahead prices is the standard naive benchmark of Lago, Marcjasz, De
Schutter, Weron (2021), "Forecasting day-ahead electricity prices: A review of state-of-the-art
algorithms, best practices and an open-access benchmark", Applied Energy 293, 116983 (the
epftoolbox "naive" model): for a Monday, Saturday or Sunday the price of the same hour one week
before, for Tuesday to Friday the same hour of the day before. For load the same hour one week
before (weekly pattern); for PV the same hour of the day before (weather persists more than a
week-old day resembles today). Days are local days of the market's / site's time zone.

When the wanted day has no value (a missing day in the data) the other lag is tried, then 14,
21, 28, 2 .. 6 days; then the last value seen. Beyond the first day of a horizon the rule is
applied recursively to its own forecast.

`Profile`: the median of the same local hour over several earlier days: the same weekday of the
last four weeks for load and price, each of the last seven days for PV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from domain.forecasting.hourly import Hourly, local_time, same_local_hour

FALLBACK_DAYS = (14, 21, 28, 2, 3, 4, 5, 6)


def lag_days(quantity: str, weekday: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Primary and secondary lag in days for targets on local `weekday` (Mon = 0)."""
    weekday = np.asarray(weekday)
    if quantity == "price":
        weekly = np.isin(weekday, (0, 5, 6))
        return np.where(weekly, 7, 1), np.where(weekly, 1, 7)
    if quantity == "pv":
        return np.full(weekday.shape, 1), np.full(weekday.shape, 7)
    return np.full(weekday.shape, 7), np.full(weekday.shape, 1)


def _recursive(known: Hourly, start: int, n: int, sources: list[np.ndarray],
               combine: Callable[[np.ndarray], float]) -> np.ndarray:
    """Fill hours ``start .. start+n-1`` in order; target i combines the values (known or already
    forecast) at ``sources[j][i]``; NaN where none exists."""
    base = known.until(start)
    grid = base.extended(start, np.full(n, np.nan)) if base.end <= start else base
    values = grid.values.copy()
    src = np.stack(sources, axis=1) - grid.start  # (n, k) positions in `values`
    out = np.full(n, np.nan)
    for i in range(n):
        pos = src[i]
        ok = (pos >= 0) & (pos < len(values))
        cand = values[pos[ok]]
        cand = cand[np.isfinite(cand)]
        if len(cand):
            out[i] = combine(cand)
            values[start - grid.start + i] = out[i]
    return out


def _last_value(known: Hourly) -> float:
    ok = np.isfinite(known.values)
    if not ok.any():
        raise ValueError("no history to forecast from")
    return float(known.values[np.flatnonzero(ok)[-1]])


@dataclass(frozen=True)
class SeasonalNaive:
    """Same local hour one day or one week before (see module docstring). Has no parameters."""

    quantity: str
    tz: str
    name: str = "seasonal_naive"

    def fit(self, train: Hourly) -> SeasonalNaive:
        return self

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        targets = np.arange(start, start + n, dtype=np.int64)
        primary, secondary = lag_days(self.quantity, local_time(targets, self.tz).weekday)
        lags = [primary, secondary, *(np.full(n, d) for d in FALLBACK_DAYS)]
        # the first lag (in this order) that has a value; known or already forecast
        out = _recursive(known, start, n, list(same_local_hour(targets, np.stack(lags), self.tz)),
                         lambda c: float(c[0]))
        last = _last_value(known)
        for i in range(n):
            if not np.isfinite(out[i]):
                out[i] = last
            last = out[i]
        return out


@dataclass(frozen=True)
class Profile:
    """Median of the same local hour on several earlier days (see module docstring)."""

    quantity: str
    tz: str
    name: str = "profile"

    def fit(self, train: Hourly) -> Profile:
        return self

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        targets = np.arange(start, start + n, dtype=np.int64)
        days = range(1, 8) if self.quantity == "pv" else (7, 14, 21, 28)
        cols = list(same_local_hour(targets, np.array(days)[:, None], self.tz))
        out = _recursive(known, start, n, cols, lambda c: float(np.median(c)))
        if not np.isfinite(out).all():
            naive = SeasonalNaive(self.quantity, self.tz).predict(known, start, n)
            out = np.where(np.isfinite(out), out, naive)
        return out
