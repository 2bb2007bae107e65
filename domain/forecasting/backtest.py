"""Rolling-origin backtest in the day-ahead setup.

Each origin is local midnight (`ForecastOptions.timezone`, Europe/Vienna by default) of a day in
the evaluation period; the models see the history strictly before it and forecast that local
day hour by hour: 24 hours, 23 on the spring DST day and 25 on the autumn one. (Day-ahead
prices of day d are known at noon of d-1, so using history up to midnight is what a trader has,
minus the half day of d-1 after the auction.) Days without any actual value are skipped; the
scores cover the hours with an actual value, every model on the same hours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from domain.forecasting.hourly import HOUR_S
from domain.forecasting.metrics import Scores, score
from domain.forecasting.pipeline import FitCache, forecast
from domain.forecasting.types import ForecastOptions


@dataclass(frozen=True)
class BacktestResult:
    """Scores per model (rMAE against "seasonal_naive") and the hourly forecasts behind them.

    `frame`: one row per evaluated hour, columns ``actual``, ``origin`` and per model
    ``<model>`` (P50), ``<model>_p10``, ``<model>_p90`` and ``<model>_vmae`` (its validation
    MAE at that origin)."""

    quantity: str
    origins: int
    scores: dict[str, Scores]
    frame: pd.DataFrame


def day_origins(start: date, end: date, tz: str, every: int = 1) -> list[pd.Timestamp]:
    """Local midnights (as UTC) of every `every`-th day from `start` to `end`, inclusive."""
    if every < 1:
        raise ValueError("every must be >= 1")
    days = [start + timedelta(days=k) for k in range(0, (end - start).days + 1, every)]
    return [pd.Timestamp(d).tz_localize(tz).tz_convert("UTC") for d in days]


def backtest(series: pd.Series, *, quantity: str, unit: str, start: date, end: date,
             every: int = 1, options: ForecastOptions = ForecastOptions(),
             on_origin: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Forecast each evaluated day from the history before it and score the models.

    `series`: the full hourly history and actuals (tz-aware UTC index). `on_origin(i, n)` is
    called after each origin (for progress output)."""
    origins = day_origins(start, end, options.timezone, every)
    rows: list[pd.DataFrame] = []
    cache = FitCache()
    for i, origin in enumerate(origins):
        day = origin.tz_convert(options.timezone).tz_localize(None).normalize()
        next_midnight = (day + pd.Timedelta(days=1)).tz_localize(options.timezone)
        horizon_s = int((next_midnight.tz_convert("UTC") - origin).total_seconds())
        hours = pd.date_range(origin, periods=horizon_s // HOUR_S, freq="h")
        actual = series.reindex(hours).to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isfinite(actual).any():
            opts = replace(options, horizon_s=horizon_s, step_s=HOUR_S)
            fcs = forecast(series, quantity=quantity, unit=unit, origin=origin.to_pydatetime(),
                           options=opts, fit_cache=cache)
            cols: dict[str, object] = {"actual": actual, "origin": origin}
            for name, f in fcs.items():
                cols[name], cols[f"{name}_p10"], cols[f"{name}_p90"] = f.p50, f.p10, f.p90
                cols[f"{name}_vmae"] = np.nan if f.validation_mae is None else f.validation_mae
            rows.append(pd.DataFrame(cols, index=hours))
        if on_origin is not None:
            on_origin(i + 1, len(origins))
    if not rows:
        raise ValueError("no evaluated day has actual values")
    frame = pd.concat(rows)
    models = [c for c in frame.columns
              if c not in ("actual", "origin") and not c.endswith(("_p10", "_p90", "_vmae"))]
    scores = {m: score(frame["actual"].to_numpy(), frame[m].to_numpy(dtype=np.float64),
                       frame["seasonal_naive"].to_numpy(), frame[f"{m}_p10"].to_numpy(),
                       frame[f"{m}_p90"].to_numpy())
              for m in models if frame[m].notna().any()}
    return BacktestResult(quantity=quantity, origins=len(rows), scores=scores, frame=frame)
