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
from scipy import sparse
from scipy.optimize import linprog

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

    @property
    def members(self) -> list[str]:
        """The scored models other than the ensemble (which is a weighting of them)."""
        return [m for m in self.scores if m != "ensemble"]


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


@dataclass(frozen=True)
class HindsightMix:
    """The MAE-optimal combination of members on the evaluated hours themselves: a ceiling for
    any weighting of these members, not a forecast (it uses the actuals it is scored on).

    `weights`: member -> weight (>= 0, not forced to sum to 1); `intercept` in the series'
    unit (EUR/MWh for prices); `scores` as for the models (rMAE against the seasonal naive)."""

    weights: dict[str, float]
    intercept: float
    scores: Scores

    def describe(self, unit: str) -> str:
        """The weights of at least 0.005 and the intercept, e.g. "0.70 lear, 0.13 prophet,
        intercept +4.60 EUR/MWh"."""
        parts = [f"{w:.2f} {m}" for m, w in self.weights.items() if w >= 0.005]
        return ", ".join([*parts, f"intercept {self.intercept:+.2f} {unit}"])


def hindsight_mix(frame: pd.DataFrame, members: list[str]) -> HindsightMix:
    """Least-absolute-deviation fit of ``actual ~ intercept + sum_m w_m * member_m`` (w >= 0) on
    the hours where the actual, the seasonal naive and every member are finite, solved as a
    linear programme with HiGHS: minimise mean(u+ + u-) subject to
    ``X w + b + u+ - u- = actual`` (the standard LP form of LAD regression, e.g. Koenker (2005),
    Quantile Regression, section 6.2). Every member alone (w = 1) and every weighted mean,
    e.g. the ensemble's, are feasible, so its MAE is at most theirs.

    `frame`: `BacktestResult.frame`; `members`: its model columns. Raises ValueError for no
    member, an unknown column, no usable hour or a failed solve."""
    if not members:
        raise ValueError("hindsight_mix needs at least one member")
    missing = [m for m in members if m not in frame.columns]
    if missing:
        raise ValueError(f"unknown members {missing}")
    actual = frame["actual"].to_numpy(dtype=np.float64)
    naive = frame["seasonal_naive"].to_numpy(dtype=np.float64)
    x = frame[members].to_numpy(dtype=np.float64)
    ok = np.isfinite(actual) & np.isfinite(naive) & np.isfinite(x).all(axis=1)
    if not ok.any():
        raise ValueError("no hour with an actual value and every member")
    x, y = x[ok], actual[ok]
    n, k = x.shape
    eye = sparse.identity(n, format="csr")
    a_eq = sparse.hstack([sparse.csr_matrix(x), sparse.csr_matrix(np.ones((n, 1))), eye, -eye],
                         format="csr")
    cost = np.concatenate([np.zeros(k + 1), np.full(2 * n, 1.0 / n)])
    bounds = [(0.0, None)] * k + [(None, None)] + [(0.0, None)] * (2 * n)
    res = linprog(cost, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    if res.status != 0:
        raise ValueError(f"hindsight mix: the LP solve failed: {res.message}")
    w, b = res.x[:k], float(res.x[k])
    pred = np.full(len(actual), np.nan)
    pred[ok] = x @ w + b
    return HindsightMix(weights=dict(zip(members, (float(v) for v in w), strict=True)),
                        intercept=b, scores=score(actual, pred, naive))
