"""Prophet (Taylor and Letham (2018), "Forecasting at scale", The American Statistician 72(1)).

The model as fitted on the hourly training window (56 days by default):

- on the local wall-clock grid (`hourly.to_local_grid`, as LEAR): `ds` is local time, so the
  daily seasonality and the lags follow the local day across DST changes;
- weekly seasonality and two daily profiles, one for weekdays and one for weekends
  (conditional seasonalities: additive daily + weekly terms cannot give weekends a different
  shape);
- flat growth (no trend extrapolation) and extra regressors (Prophet's ``add_regressor``,
  https://facebook.github.io/prophet/docs/seasonality,_holiday_effects,_and_regressors.html),
  all known for the whole day at a day-ahead origin (local midnight): the value of the same
  local hour 24 h and 168 h before; "level", the mean of the 24 hours before the hour's day;
  with ``extra=("naive", "last")`` (what `forecast` uses) also the seasonal naive's value
  (`naive.SeasonalNaive`: 168 h before on Mon/Sat/Sun, else 24 h) and "last", the value of
  the last hour before the day (23:00 of d-1, the hour next to the night hours). Beyond the
  first day the forecast is fed back as these inputs;
- optional public holidays (`holidays`, a country code): one holiday effect (Prophet's
  `holidays` frame) and the weekend daily profile on those days;
- prices are fitted after the asinh transform of `lear.Scaler` (spikes would otherwise
  dominate the squared-error fit), with the median and MAD of the last `scale_days` days of
  the window (7 in `forecast`); values and forecasts are in the series' unit (EUR/MWh);
- `uncertainty_samples=0`: Prophet's own intervals are random draws; the quantiles come from
  residuals instead (`domain.forecasting.pipeline`), so the same input gives the same output.

Chosen on 2022 prices (earlier round, every 4th day, rMAE against the seasonal naive):
Prophet's defaults (linear trend) 1.10; with the lags 0.92; flat growth, lags and level 0.78
(28-day window 0.82, 112 days 0.80). Second round (issue 5; 2022 only, every 3rd day, 122
origins; 2023 held out): that model 0.759; + naive 0.755; + d-1 min/max 0.761; + holidays
0.764; daily Fourier order 12 instead of 6 0.755; lag coefficients per 4 or 6 parts of the
day 0.763/0.765; + "last" **0.684** (chosen: 56 days, naive and last), without naive 0.692,
+ holidays 0.690, + mean of the last 6 hours 0.716; windows 42/70/84 days 0.716/0.691/0.709.
Third round (issue 5, same 122 origins): seasonality_prior_scale 1 (default 10) 0.684;
regressor prior_scale 0.1/0.01/100 (default 10) 0.683/0.701/0.684; linear growth with
changepoint_prior_scale 0.001 not finished (1.6 s a fit); lags 24/48/168 h 0.690,
24/48/72/168 h 0.688; the asinh scaler's median and MAD from the last 3/5/7/10/14/28 days of
the window instead of all 56 days 0.681/0.672/**0.665**/0.674/0.682/0.674 (chosen:
``scale_days=7``; the transform then centres on the current level, as LEAR's rolling member).
Prophet is imported on first use (slow; it logs a plotly notice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from domain.forecasting.holidays import holiday_days, holiday_mask
from domain.forecasting.hourly import HOUR_S, Hourly, local_hours, local_weekday, to_local_grid
from domain.forecasting.lear import Scaler


def _frame(local: np.ndarray, country: str | None = None) -> pd.DataFrame:
    """Prophet's input rows for local hour numbers: `ds` is the local wall-clock time; public
    holidays of `country` count as weekend days for the daily profile."""
    weekday = local_weekday(local)
    weekend = weekday >= 5
    if country is not None:
        weekend = weekend | holiday_mask(local, country)
    return pd.DataFrame({"ds": pd.to_datetime(np.asarray(local) * HOUR_S, unit="s"),
                         "weekend": weekend, "weekday": ~weekend})


def _day_mean(grid: Hourly, blocks: np.ndarray) -> np.ndarray:
    """Per hour the mean of the 24 hours before its block start (`blocks`); NaN when none."""
    means = {}
    for b in np.unique(blocks):
        day = grid.at(np.arange(b - 24, b))
        means[b] = float(np.mean(day[np.isfinite(day)])) if np.isfinite(day).any() else np.nan
    return np.array([means[b] for b in blocks])


def _regressors(frame: pd.DataFrame, grid: Hourly, local: np.ndarray, lags_h: tuple[int, ...],
                level_phase: int | None, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The regressors, all known at the start of the hour's 24-h block (blocks start at
    `level_phase` modulo 24): the lagged values (same local hour `lag` >= 24 hours before);
    "level", the mean of the 24 hours before the block; and with `extra` "naive", the seasonal
    naive's value (168 h before on Mon, Sat, Sun, else 24 h before; `naive.SeasonalNaive`) and
    "last", the value of the last hour before the block."""
    for lag in lags_h:
        frame[f"lag{lag}"] = grid.at(local - lag)
    if level_phase is not None:
        block = local - (local - level_phase) % 24
        frame["level"] = _day_mean(grid, block)
        if "last" in extra:
            frame["llast"] = grid.at(block - 1)
    if "naive" in extra:
        weekly = np.isin(local_weekday(local), (0, 5, 6))
        frame["lnaive"] = grid.at(local - np.where(weekly, 168, 24))
    return frame


@dataclass(frozen=True)
class ProphetFit:
    """A fitted Prophet on the local wall-clock grid (`hourly.to_local_grid`)."""

    model: Any
    scaler: Scaler | None
    tz: str
    lags_h: tuple[int, ...] = ()
    level_phase: int | None = None
    fill: float = 0.0  # stands in for a missing regressor value: the mean of the target
    holidays: str | None = None
    extra: tuple[str, ...] = ()

    def _forward(self, y: np.ndarray) -> np.ndarray:
        return y if self.scaler is None else np.asarray(self.scaler.forward(y))

    def _output(self, yhat: np.ndarray) -> np.ndarray:
        return yhat if self.scaler is None else np.asarray(self.scaler.inverse(yhat))

    def _yhat(self, grid: Hourly, local: np.ndarray) -> np.ndarray:
        frame = _regressors(_frame(local, self.holidays), grid, local, self.lags_h,
                            self.level_phase, self.extra)
        frame = frame.fillna({c: self.fill for c in frame.columns if c.startswith("l")})
        return np.asarray(self.model.predict(frame)["yhat"].to_numpy(np.float64))

    def _grid(self, known: Hourly) -> Hourly:
        grid = to_local_grid(known, self.tz)
        return Hourly(grid.start, self._forward(grid.values))

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        """Forecast 24 h at a time, feeding the forecast back as lags beyond the first day."""
        targets = local_hours(np.arange(start, start + n), self.tz)
        first = int(targets[0])
        grid = self._grid(known.until(start)).until(first)
        local = np.arange(first, int(targets[-1]) + 1)
        parts: list[np.ndarray] = []
        for s in range(0, len(local), 24):
            part = self._yhat(grid, local[s: s + 24])
            parts.append(part)
            grid = grid.extended(int(local[s]), part)
        return self._output(np.concatenate(parts)[targets - first])

    def predict_day_ahead(self, known: Hourly, start: int, n: int) -> np.ndarray:
        """Each 24-h block of ``[start, start + n)`` forecast day-ahead from the actual values
        in `known` before it, in one call (every regressor reaches back at least 24 h, into
        the previous block)."""
        targets = local_hours(np.arange(start, start + n), self.tz)
        first = int(targets[0])
        local = np.arange(first, int(targets[-1]) + 1)
        return self._output(self._yhat(self._grid(known), local)[targets - first])


@dataclass(frozen=True)
class ProphetModel:
    tz: str
    transform: bool = True
    changepoint_prior_scale: float = 0.05
    lags_h: tuple[int, ...] = (24, 168)
    level: bool = True
    growth: Literal["linear", "flat"] = "flat"
    name: str = "prophet"
    holidays: str | None = None
    extra: tuple[str, ...] = ()
    seasonality_prior_scale: float = 10.0  # Prophet's default
    regressor_prior_scale: float = 10.0    # Prophet's default (its holidays_prior_scale)
    scale_days: int | None = None  # the asinh scaler from the last days only (None: window)

    def fit(self, train: Hourly) -> ProphetFit:
        from prophet import Prophet  # slow import, only when used

        train = to_local_grid(train, self.tz)
        ok = np.isfinite(train.values)
        if ok.sum() < 48:
            raise ValueError("prophet needs at least two days of history")
        scaler = None
        if self.transform:  # median/MAD of the last `scale_days` days (of the window if None)
            recent = train.values[-24 * self.scale_days:] if self.scale_days else train.values
            recent = recent[np.isfinite(recent)]
            scaler = Scaler.of(recent if len(recent) >= 24 else train.values[ok])
        grid = Hourly(train.start, train.values if scaler is None
                      else np.asarray(scaler.forward(train.values)))
        hours = train.start + np.flatnonzero(ok)
        phase = train.end % 24 if self.level else None
        frame = _regressors(_frame(hours, self.holidays), grid, hours, self.lags_h, phase,
                            self.extra)
        frame["y"] = grid.at(hours)
        frame = frame.dropna()
        if len(frame) < 48:
            raise ValueError("prophet needs at least two days of history with lags")
        span_days = (hours[-1] - hours[0]) / 24
        m = Prophet(growth=self.growth, yearly_seasonality=span_days >= 730,
                    weekly_seasonality=True, daily_seasonality=False,
                    changepoint_prior_scale=self.changepoint_prior_scale,
                    seasonality_prior_scale=self.seasonality_prior_scale,
                    holidays=self._holidays(hours), uncertainty_samples=0)
        m.add_seasonality("daily_weekday", period=1, fourier_order=6, condition_name="weekday")
        m.add_seasonality("daily_weekend", period=1, fourier_order=6, condition_name="weekend")
        for col in frame.columns:
            if col.startswith("l"):  # lag*, level, llast, lnaive
                m.add_regressor(col, prior_scale=self.regressor_prior_scale)
        m.fit(frame)
        return ProphetFit(m, scaler, self.tz, self.lags_h, phase, float(frame["y"].mean()),
                          self.holidays, self.extra)

    def _holidays(self, hours: np.ndarray) -> pd.DataFrame | None:
        """Prophet's `holidays` frame: one effect "public_holiday" for every public holiday of
        the training years and the year after (the forecast's)."""
        if self.holidays is None:
            return None
        days = pd.to_datetime(np.asarray([hours[0], hours[-1]]) * HOUR_S, unit="s")
        found = holiday_days(self.holidays, range(days[0].year, days[1].year + 2))
        return pd.DataFrame({"holiday": "public_holiday",
                             "ds": pd.to_datetime(found * 86400, unit="s")})
