"""Prophet (Taylor and Letham (2018), "Forecasting at scale", The American Statistician 72(1)).

Fitted on the hourly training window with `ds` in local wall-clock time (so the daily
seasonality follows the local day across DST), linear trend, daily and weekly seasonality, and
a separate daily profile for weekends (a conditional seasonality: weekday and weekend days have
different shapes, which additive daily + weekly terms cannot express). Yearly seasonality only
with two years of history. `uncertainty_samples=0`: Prophet's own intervals are random draws;
the quantiles come from residuals instead (see `domain.forecasting.pipeline`), so the same input
gives the same output. Prices are fitted after the asinh transform of `lear.Scaler`
(spikes would otherwise dominate the squared-error fit).

Prophet is imported on first use (importing it takes a while and logs a plotly notice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from domain.forecasting.hourly import Hourly, timestamps
from domain.forecasting.lear import Scaler


def _frame(hours: np.ndarray, tz: str) -> pd.DataFrame:
    local = timestamps(hours).tz_convert(tz)
    ds = local.tz_localize(None)
    return pd.DataFrame({"ds": ds, "weekend": local.dayofweek >= 5,
                         "weekday": local.dayofweek < 5})


@dataclass(frozen=True)
class ProphetFit:
    model: Any
    scaler: Scaler | None
    tz: str
    uses_history: bool = False  # the forecast depends on the time only, not on recent values

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        frame = _frame(np.arange(start, start + n, dtype=np.int64), self.tz)
        yhat = self.model.predict(frame)["yhat"].to_numpy(dtype=np.float64)
        return yhat if self.scaler is None else np.asarray(self.scaler.inverse(yhat))


@dataclass(frozen=True)
class ProphetModel:
    tz: str
    transform: bool = True
    changepoint_prior_scale: float = 0.05
    name: str = "prophet"

    def fit(self, train: Hourly) -> ProphetFit:
        from prophet import Prophet  # slow import, only when used

        ok = np.isfinite(train.values)
        hours = train.start + np.flatnonzero(ok)
        y = train.values[ok]
        if len(y) < 48:
            raise ValueError("prophet needs at least two days of history")
        scaler = Scaler.of(y) if self.transform else None
        frame = _frame(hours, self.tz)
        frame["y"] = y if scaler is None else scaler.forward(y)
        span_days = (hours[-1] - hours[0]) / 24
        m = Prophet(growth="linear", yearly_seasonality=span_days >= 730,
                    weekly_seasonality=True, daily_seasonality=False,
                    changepoint_prior_scale=self.changepoint_prior_scale,
                    uncertainty_samples=0)
        m.add_seasonality("daily_weekday", period=1, fourier_order=6, condition_name="weekday")
        m.add_seasonality("daily_weekend", period=1, fourier_order=6, condition_name="weekend")
        m.fit(frame)
        return ProphetFit(m, scaler, self.tz)
