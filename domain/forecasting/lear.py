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

Two normalisations (`Lear.level_days`, `Lear.norm_days`), both translation- and
scale-equivariant (prices a + b y give forecasts a + b f):

- level (``level_days=1``): after the window's median/MAD + asinh, the mean of the transformed
  values of the day before each day (d-1) is subtracted from that day's inputs and target and
  added back to the forecast, so the lasso shrinks towards "the level of yesterday" instead of
  the window mean: the forecast follows a falling or rising level (2023 fell from the 2022
  crisis);
- rolling (``norm_days=7``): each day's inputs and target are scaled by the median and
  1.4826 MAD of the 7 days before it (Uniejewski et al. 2018 use window-wide normalisation; a
  per-day rolling one also adapts the asinh to the current volatility).

`LearAverage` averages several LEARs (as the epftoolbox LEAR ensemble averages its four
calibration windows 56/84/1092/1456 days); `forecast` runs one level and one rolling member,
both on a 1092-day window (`pipeline.lear_members`). Public holidays (`holidays`, e.g. "AT")
get the Sunday dummy.

A forecast is clipped to the range of the (scaled) targets of the calibration window, widened
by 0.5 in asinh units (a factor of about 1.6 in the tails): the inverse transform is
exponential, and a linear model extrapolating in asinh space can otherwise return absurd values
(it did on PV: a day with values in the 10^7 kW).

Choices, made on 2022 prices only (day-ahead from every 3rd local midnight, 122 origins, rMAE
against the seasonal naive; 2023 stayed held out): one window-wide normalisation, 364 days
0.680; holidays as Sundays 0.676; level 0.646 (0.635 as the mean of the raw transformed d-1);
level + holidays 0.632; the same on 56/84/182/728/1092 days 0.831/0.808/0.674/0.618/0.614;
d-1 min/max as extra inputs 0.681 (dropped); rolling normalisation alone on 728 days with 7, 14,
28 days 0.620/0.639/0.645 (3 days 0.612), on 1092 days (7) 0.618; averages: level 364+728
0.615, level 364+728+1092 0.609, adding 56/84-day members 0.64-0.68 (short windows hurt, as in
the earlier 56/84/364/728 trial), level 1092 + rolling(7) 1092 **0.586** (chosen: the two
normalisations err differently), level 1092 + rolling(3) 728 0.584; (issue 5, third round)
level and rolling on both 728 and 1092 days 0.588 (single members 728 days: level 0.618,
rolling 0.620; dropped). BIC instead of AIC (0.665
against 0.684 in the earlier single-window tuning: sparser models extrapolate less wildly).

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

from domain.forecasting.holidays import holiday_mask
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


def _dummies(local: np.ndarray, country: str | None = None) -> np.ndarray:
    """(n, 7) one-hot weekday of local hour numbers; public holidays of `country` as Sunday."""
    wd = local_weekday(local)
    if country is not None:
        wd = np.where(holiday_mask(local, country), 6, wd)
    return np.asarray((wd[:, None] == np.arange(7)[None, :]).astype(np.float64))


@dataclass(frozen=True)
class BlockScale:
    """Per 24-h block the transform ``asinh((y - median) / scale) - level`` (arrays (blocks,))."""

    median: np.ndarray
    scale: np.ndarray
    level: np.ndarray

    def scaled(self, y: np.ndarray) -> np.ndarray:
        """asinh((y - median) / scale) of (blocks, k) raw values."""
        return np.asarray(np.arcsinh((y - self.median[:, None]) / self.scale[:, None]))

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(self.median[:, None] + self.scale[:, None] * np.sinh(scaled))


def rolling_scale(raw: Hourly, starts: np.ndarray, fallback: Scaler,
                  days: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 MAD of the raw values of the `days` days before each block start,
    shapes (blocks,); `fallback`'s where those days have no data (or no spread)."""
    win = raw.at(starts[:, None] - np.arange(1, 24 * days + 1)[None, :])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(win, axis=1)
        mad = MAD_TO_SIGMA * np.nanmedian(np.abs(win - med[:, None]), axis=1)
    med = np.where(np.isfinite(med), med, fallback.median)
    mad = np.where(np.isfinite(mad) & (mad > 1e-3 * fallback.scale), mad, fallback.scale)
    return np.asarray(med), np.asarray(mad)


def _block_scale(raw: Hourly, starts: np.ndarray, scaler: Scaler, level_days: int,
                 norm_days: int) -> BlockScale:
    """The transform of each block: with `norm_days`, median and 1.4826 MAD of the raw values
    of the `norm_days` days before the block; else the window's `scaler` minus the mean of the
    scaled values of the `level_days` days before the block (0: no level)."""
    n = len(starts)
    if norm_days:
        med, mad = rolling_scale(raw, starts, scaler, norm_days)
        return BlockScale(med, mad, np.zeros(n))
    bs = BlockScale(np.full(n, scaler.median), np.full(n, scaler.scale), np.zeros(n))
    if level_days == 0:
        return bs
    win = bs.scaled(raw.at(starts[:, None] - np.arange(1, 24 * level_days + 1)[None, :]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nan_to_num(np.nanmean(win, axis=1), nan=0.0)
    return BlockScale(bs.median, bs.scale, np.asarray(level))


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
    z_bounds: tuple[float, float]  # scaled forecasts are clipped to these values
    holidays: str | None = None
    level_days: int = 0
    norm_days: int = 0

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        targets = local_hours(np.arange(start, start + n), self.tz)
        block = int(targets[0]) - (int(targets[0]) - self.phase) % 24  # aligned, <= start
        reach = 24 * (max(LAGS_DAYS) + max(self.level_days, self.norm_days) + 2)
        raw = to_local_grid(known.until(start).since(start - reach), self.tz).until(block)
        out: list[np.ndarray] = []
        while block + 24 * len(out) <= targets[-1]:
            s = block + 24 * len(out)
            bs = _block_scale(raw, np.array([s]), self.scaler, self.level_days, self.norm_days)
            x = _impute(bs.scaled(_lag_features(raw, np.array([s]))) - bs.level[:, None])
            d = _dummies(s + np.arange(24), self.holidays)
            f = x.shape[1]
            pred = self.coef[:, :f] @ x[0] + (self.coef[:, f:] * d).sum(axis=1) + self.intercept
            pred = np.clip(pred + bs.level[0], *self.z_bounds)
            out.append(bs.inverse(pred[None, :])[0])
            raw = raw.extended(s, out[-1])
        return np.asarray(np.concatenate(out)[targets - block])


@dataclass(frozen=True)
class Lear:
    """Fit the 24 hour models on the last `window_days` days of the training data (values in
    the series' unit, e.g. EUR/MWh; forecasts in the same unit).

    `holidays`: country code whose public holidays get the Sunday dummy (None: none);
    `level_days`: subtract the mean of the transformed values of that many days before each
    day (0: off); `norm_days`: instead scale each day by the median/MAD of that many days
    before it (0: the window's median/MAD). See the module docstring."""

    tz: str
    window_days: int = 364
    criterion: str = "bic"
    name: str = "lear"
    holidays: str | None = None
    level_days: int = 0
    norm_days: int = 0

    def fit(self, train: Hourly) -> LearFit:
        raw = to_local_grid(train.since(train.end - 24 * self.window_days), self.tz)
        if np.isfinite(raw.values).sum() < 24 * (max(LAGS_DAYS) + 2):
            raise ValueError("lear needs at least 9 days of history")
        end = raw.end
        scaler = Scaler.of(raw.values)
        n_blocks = (end - raw.start) // 24 - max(LAGS_DAYS)
        if n_blocks < 2:
            raise ValueError("lear needs at least 9 days of history")
        starts = end - 24 * np.arange(n_blocks, 0, -1)
        bs = _block_scale(raw, starts, scaler, self.level_days, self.norm_days)
        x = bs.scaled(_lag_features(raw, starts)) - bs.level[:, None]
        y_scaled = bs.scaled(raw.at(starts[:, None] + np.arange(24)[None, :]))
        y = y_scaled - bs.level[:, None]
        n_feat = x.shape[1] + 7
        noise = _noise_variances(x, y, _dummies(starts, self.holidays))
        coef = np.zeros((24, n_feat))
        intercept = np.zeros(24)
        for h in range(24):
            rows = np.isfinite(x).all(axis=1) & np.isfinite(y[:, h])
            xh = np.concatenate([x[rows], _dummies(starts[rows] + h, self.holidays)], axis=1)
            coef[h], intercept[h] = _lasso_ic(xh, y[rows, h], noise[h], self.criterion)
        seen = y_scaled[np.isfinite(y_scaled)]
        bounds = (float(seen.min()) - Z_MARGIN, float(seen.max()) + Z_MARGIN)
        return LearFit(scaler, coef, intercept, int(end % 24), self.tz, bounds, self.holidays,
                       self.level_days, self.norm_days)


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



@dataclass(frozen=True)
class LearAverageFit:
    """The fitted members of `LearAverage`; a forecast is the mean of theirs (EUR/MWh or the
    unit of the series)."""

    members: tuple[LearFit, ...]

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        return np.asarray(np.mean([m.predict(known, start, n) for m in self.members], axis=0))


@dataclass(frozen=True)
class LearAverage:
    """The mean forecast of several LEARs (the epftoolbox LEAR ensemble averages calibration
    windows; here the members differ in window and normalisation). `members`: (window days,
    level days, norm days) per member, see `Lear`."""

    tz: str
    members: tuple[tuple[int, int, int], ...]
    holidays: str | None = None
    criterion: str = "bic"
    name: str = "lear"

    @property
    def window_days(self) -> int:
        return max(m[0] for m in self.members)

    def fit(self, train: Hourly) -> LearAverageFit:
        return LearAverageFit(tuple(
            Lear(self.tz, w, self.criterion, holidays=self.holidays, level_days=lv,
                 norm_days=nd).fit(train) for w, lv, nd in self.members))
