"""Gradient-boosted trees on LEAR's inputs (scikit-learn ``HistGradientBoostingRegressor``).

One model for all 24 hours of the day (the hour is a feature), on the local wall-clock grid
(`hourly.to_local_grid`, as LEAR). Every day's values are scaled as LEAR's rolling member
(`lear.Lear` with ``norm_days=7``): ``asinh((y - median) / (1.4826 MAD))`` over the 7 days
before the day, so the trees (which cannot extrapolate) see a level- and scale-free target.
Features of hour h of day d, all known at d's local midnight: the 24 values of d-1, the values
of hour h on d-2, d-3 and d-7, the mean, minimum and maximum of d-1, the hour, the weekday and
a public-holiday flag (`holidays`). Deterministic: fixed ``random_state``, no early stopping
(its validation split would be random). Forecasts beyond the first
day feed the forecast back as lags, as LEAR.

Why: a member whose errors differ from the linear LEARs' (non-linear in the hour/weekday and
lag interactions) for the equal-weight ensemble (`pipeline`). Chosen on 2022 prices (every 3rd
day, 122 origins, rMAE; 2023 held out): alone 0.641 with the absolute loss, 200 iterations,
learning rate 0.05, 31 leaves, 728 days; **0.631** with the squared loss, 100 iterations,
learning rate 0.1 (`pipeline.gbm_model`, about 0.9 s a fit on 728 days); 0.668 on 364 days;
0.641 with 50 iterations of 15 leaves. In the member mean (LEAR-level, LEAR-rolling, Prophet,
GBM) 0.571 against 0.583 without GBM; see `pipeline`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.forecasting.holidays import holiday_mask
from domain.forecasting.hourly import Hourly, local_hours, local_weekday, to_local_grid
from domain.forecasting.lear import Scaler, rolling_scale

NORM_DAYS = 7
SAME_HOUR_LAGS = (2, 3, 7)


def _features(raw: Hourly, starts: np.ndarray, med: np.ndarray, mad: np.ndarray,
              holidays: str | None) -> np.ndarray:
    """(blocks * 24, features) rows, block-major (row 24 b + h is hour h of block b)."""
    def z(hours: np.ndarray) -> np.ndarray:
        return np.asarray(np.arcsinh((raw.at(hours) - med[:, None]) / mad[:, None]))

    offs = np.arange(24)
    d1 = z(starts[:, None] - 24 + offs[None, :])                       # (b, 24)
    same = [z(starts[:, None] - 24 * d + offs[None, :]) for d in SAME_HOUR_LAGS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = np.stack([np.nanmean(d1, axis=1), np.nanmin(d1, axis=1),
                          np.nanmax(d1, axis=1)], axis=1)              # (b, 3)
    b = len(starts)
    local = (starts[:, None] + offs[None, :]).ravel()
    hol = (holiday_mask(local, holidays) if holidays is not None
           else np.zeros(len(local), dtype=bool))
    cols = [np.repeat(d1, 24, axis=0), *(s.reshape(-1, 1) for s in same),
            np.repeat(stats, 24, axis=0), np.tile(offs, b).reshape(-1, 1).astype(np.float64),
            local_weekday(local).reshape(-1, 1).astype(np.float64),
            hol.reshape(-1, 1).astype(np.float64)]
    return np.concatenate(cols, axis=1)


@dataclass(frozen=True)
class GbmFit:
    model: Any
    scaler: Scaler
    phase: int
    tz: str
    holidays: str | None

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        targets = local_hours(np.arange(start, start + n), self.tz)
        block = int(targets[0]) - (int(targets[0]) - self.phase) % 24
        reach = 24 * (max(SAME_HOUR_LAGS) + NORM_DAYS + 2)
        raw = to_local_grid(known.until(start).since(start - reach), self.tz).until(block)
        out: list[np.ndarray] = []
        while block + 24 * len(out) <= targets[-1]:
            s = np.array([block + 24 * len(out)])
            med, mad = rolling_scale(raw, s, self.scaler, NORM_DAYS)
            pred = np.asarray(self.model.predict(_features(raw, s, med, mad, self.holidays)))
            out.append(med[0] + mad[0] * np.sinh(pred))
            raw = raw.extended(int(s[0]), out[-1])
        return np.asarray(np.concatenate(out)[targets - block])


@dataclass(frozen=True)
class GbmModel:
    """`HistGradientBoostingRegressor` on the last `window_days` days (see module docstring)."""

    tz: str
    window_days: int = 728
    holidays: str | None = None
    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    loss: str = "absolute_error"
    name: str = "gbm"

    def fit(self, train: Hourly) -> GbmFit:
        from sklearn.ensemble import HistGradientBoostingRegressor

        raw = to_local_grid(train.since(train.end - 24 * self.window_days), self.tz)
        lead = max(SAME_HOUR_LAGS) + 1
        n_blocks = (raw.end - raw.start) // 24 - lead
        if n_blocks < 7 or np.isfinite(raw.values).sum() < 24 * (lead + 7):
            raise ValueError("gbm needs at least 15 days of history")
        scaler = Scaler.of(raw.values)
        starts = raw.end - 24 * np.arange(n_blocks, 0, -1)
        med, mad = rolling_scale(raw, starts, scaler, NORM_DAYS)
        x = _features(raw, starts, med, mad, self.holidays)
        y = np.arcsinh((raw.at(starts[:, None] + np.arange(24)[None, :]) - med[:, None])
                       / mad[:, None]).ravel()
        ok = np.isfinite(y)
        model = HistGradientBoostingRegressor(
            loss=self.loss, max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, early_stopping=False, random_state=0,
            categorical_features=None).fit(x[ok], y[ok])
        return GbmFit(model, scaler, int(raw.end % 24), self.tz, self.holidays)
