"""LEAR: the Lasso Estimated AutoRegressive model of Lago et al. (2021), price-only.

Lago, Marcjasz, De Schutter, Weron (2021), Applied Energy 293, 116983, section 4.2, and its
reference implementation (epftoolbox, ``epftoolbox/models/_lear.py``): 24 linear models, one per
hour of the day, each regressing the (transformed) value of that hour on all 24 values of the
days d-1, d-2, d-3 and d-7 and seven day-of-week dummies, estimated by the LASSO with the
regularisation chosen by an information criterion on the LARS path (scikit-learn
``LassoLarsIC``). Before fitting, values are normalised by the median and the median absolute
deviation of the calibration window and passed through the variance-stabilising ``asinh``
(Uniejewski, Weron, Ziel (2018), "Variance stabilizing transformations for electricity spot
price forecasting", IEEE Trans. Power Systems 33(2)). The exogenous inputs of the original
(load and wind/solar forecasts) are left out: the shipped data has none for the evaluation
years.

A forecast is clipped to the range the calibration window saw, widened by 0.5 in asinh units
(a factor of about 1.6 in the tails): the inverse transform is exponential, and a linear model
extrapolating in asinh space can otherwise return absurd values (it did on PV: a day with
values in the 10^7 kW).

Departures from the reference, chosen on 2022 (the year before the evaluation year): one
364-day calibration window instead of the average over 56/84/1092/1456 days (an average of
56/84/364/728-day LEARs scored rMAE 0.69 against 0.665 for the single window), and BIC instead
of AIC (0.665 against 0.684: sparser models extrapolate less wildly after the asinh).

The model works on the local wall-clock grid (`hourly.to_local_grid`: 24 hours every local
day; the spring gap filled from its neighbours, the doubled autumn hour averaged, and mapped
back the same way), so hour 7 is always 07:00 local and d-7 is the same local hour a week
before, across DST changes too. "Days" are 24-hour blocks aligned to the forecast start (local
days for a start at local midnight). Horizons beyond 24 hours are forecast block by block,
feeding the forecast back as lags.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LassoLarsIC

from domain.forecasting.hourly import Hourly, local_hours, local_weekday, to_local_grid

LAGS_DAYS = (1, 2, 3, 7)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
Z_MARGIN = 0.5  # forecasts stay within the calibration window's range +- this (asinh units)


@dataclass(frozen=True)
class Scaler:
    """``z = asinh((y - median) / scale)`` with scale = 1.4826 MAD (the "invariant" scaling)."""

    median: float
    scale: float

    @classmethod
    def of(cls, values: np.ndarray) -> Scaler:
        v = values[np.isfinite(values)]
        med = float(np.median(v))
        scale = MAD_TO_SIGMA * float(np.median(np.abs(v - med)))
        if not scale > 1e-9:
            scale = float(np.std(v)) or 1.0
        return cls(med, scale)

    def forward(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(np.arcsinh((y - self.median) / self.scale))

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.median + self.scale * np.sinh(z))


def _lag_features(z: Hourly, block_starts: np.ndarray) -> np.ndarray:
    """(blocks, 24 * len(LAGS_DAYS)) matrix: the 24 hours of each lagged day block."""
    offs = np.arange(24)
    cols = [z.at(block_starts[:, None] - 24 * d + offs[None, :]) for d in LAGS_DAYS]
    return np.concatenate(cols, axis=1)


def _dummies(local: np.ndarray) -> np.ndarray:
    """(n, 7) one-hot weekday of local hour numbers."""
    wd = local_weekday(local)
    return np.asarray((wd[:, None] == np.arange(7)[None, :]).astype(np.float64))


def _impute(x: np.ndarray) -> np.ndarray:
    """Missing lag values: the mean of the same hour in the other lag days, else 0 (median)."""
    if np.isfinite(x).all():
        return x
    blocks = x.reshape(x.shape[0], len(LAGS_DAYS), 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fill = np.nanmean(blocks, axis=1, keepdims=True)
    blocks = np.where(np.isfinite(blocks), blocks, np.broadcast_to(fill, blocks.shape))
    return np.asarray(np.nan_to_num(blocks.reshape(x.shape), nan=0.0))


@dataclass(frozen=True)
class LearFit:
    """The 24 fitted hour models, on the local wall-clock grid; `phase` = local hour number of
    the block starts modulo 24 (0: days start at local midnight)."""

    scaler: Scaler
    coef: np.ndarray        # (24, features)
    intercept: np.ndarray   # (24,)
    phase: int
    tz: str
    z_bounds: tuple[float, float]  # forecasts are clipped to these (transformed) values

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        targets = local_hours(np.arange(start, start + n), self.tz)
        block = int(targets[0]) - (int(targets[0]) - self.phase) % 24  # aligned, <= start
        grid = to_local_grid(known.until(start), self.tz).until(block)
        z = Hourly(grid.start, self.scaler.forward(grid.values))
        out: list[np.ndarray] = []
        while block + 24 * len(out) <= targets[-1]:
            s = block + 24 * len(out)
            x = _impute(_lag_features(z, np.array([s])))
            d = _dummies(s + np.arange(24))
            f = x.shape[1]
            pred = self.coef[:, :f] @ x[0] + (self.coef[:, f:] * d).sum(axis=1) + self.intercept
            pred = np.clip(pred, *self.z_bounds)
            out.append(pred)
            z = z.extended(s, pred)
        return np.asarray(self.scaler.inverse(np.concatenate(out)[targets - block]))


@dataclass(frozen=True)
class Lear:
    """Fit the 24 hour models on the last `window_days` days of the training data."""

    tz: str
    window_days: int = 364
    criterion: str = "bic"
    name: str = "lear"

    def fit(self, train: Hourly) -> LearFit:
        train = to_local_grid(train.since(train.end - 24 * self.window_days), self.tz)
        end = train.end
        scaler = Scaler.of(train.values)
        z = Hourly(train.start, scaler.forward(train.values))
        n_blocks = (end - train.start) // 24 - max(LAGS_DAYS)
        if n_blocks < 2:
            raise ValueError("lear needs at least 9 days of history")
        starts = end - 24 * np.arange(n_blocks, 0, -1)
        x = _lag_features(z, starts)
        y = z.at(starts[:, None] + np.arange(24)[None, :])
        n_feat = x.shape[1] + 7
        noise = _noise_variances(x, y, _dummies(starts))
        coef = np.zeros((24, n_feat))
        intercept = np.zeros(24)
        for h in range(24):
            rows = np.isfinite(x).all(axis=1) & np.isfinite(y[:, h])
            xh = np.concatenate([x[rows], _dummies(starts[rows] + h)], axis=1)
            coef[h], intercept[h] = _lasso_ic(xh, y[rows, h], noise[h], self.criterion)
        seen = z.values[np.isfinite(z.values)]
        bounds = (float(seen.min()) - Z_MARGIN, float(seen.max()) + Z_MARGIN)
        return LearFit(scaler, coef, intercept, int(end % 24), self.tz, bounds)


def _noise_variances(x: np.ndarray, y: np.ndarray, dummies: np.ndarray) -> np.ndarray:
    """Noise variance per hour for the AIC: the residual variance of one least-squares fit of all
    24 hours on the lags and the first hour's weekday dummies (what ``LassoLarsIC`` estimates
    per hour, at 1/24 of the cost); with too few days for that, the variance of the day-before
    value's error."""
    rows = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    a = np.concatenate([x[rows], dummies[rows]], axis=1)
    n, p = a.shape
    if n > p + 1:
        a1 = np.concatenate([a, np.ones((n, 1))], axis=1)
        beta = np.linalg.lstsq(a1, y[rows], rcond=None)[0]
        var = ((y[rows] - a1 @ beta) ** 2).sum(axis=0) / (n - p - 1)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            var = np.nanvar(y - x[:, :24], axis=0)
    return np.asarray(np.maximum(np.nan_to_num(var, nan=1.0), 1e-6))


def _lasso_ic(x: np.ndarray, y: np.ndarray, noise: float,
              criterion: str) -> tuple[np.ndarray, float]:
    """LASSO with the regularisation chosen by AIC on the LARS path (``LassoLarsIC``; the
    coefficients at that point of the path are the LASSO solution, so unlike epftoolbox there is
    no second fit by coordinate descent)."""
    if len(y) < 3:
        return np.zeros(x.shape[1]), float(np.mean(y)) if len(y) else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ic = LassoLarsIC(criterion=criterion, max_iter=2500, noise_variance=noise).fit(x, y)
    return np.asarray(ic.coef_, dtype=np.float64), float(ic.intercept_)

