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
  per-day rolling one also adapts the asinh to the current volatility). Both together: the
  level is subtracted after the rolling scaling.

`LearAverage` averages several LEARs (as the epftoolbox LEAR ensemble averages its four
calibration windows 56/84/1092/1456 days); `forecast` runs one level and one rolling member,
both on a 1092-day window and each hour's LASSO refitted by least squares on the inputs it
selected (`pipeline.lear_model`; see "Refit" below). Public holidays (`holidays`, e.g. "AT")
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

Refit (`Lear.refit`; issue 5, fourth round, same 122 origins of 2022, plus 2021 (every 3rd
local midnight, 122 origins; shorter windows, the prices start in 2020) as a second check;
pairs are level 1092 + rolling(7) 1092, "ensemble" the mean with GBM and Prophet, see
`pipeline`): the LASSO shrinks the selected coefficients towards 0; refitting each hour's
model by least squares on the inputs the LASSO selected (the relaxed LASSO of Meinshausen
(2007), Computational Statistics & Data Analysis 52(1), with phi = 0; post-LASSO OLS of
Belloni and Chernozhukov (2013), Bernoulli 19(2)) scored level 0.633, rolling 0.607, pair
0.585 (2021: 0.691/0.726/0.692 against 0.697/0.742/0.707 without), ensemble **0.566**
against 0.573 (2021: 0.675 against 0.688): chosen (``refit="ols"``, `pipeline.lear_model`;
about 7 % more fit time). 2023, run once afterwards: the pair 0.627 (0.632 without refit).
Tried and dropped: least absolute deviation on the selected inputs (the loss of the MAE; IRLS)
0.621/0.611, pair 0.587, ensemble 0.573; the LASSO with the median residual as intercept
0.608/0.618, pair 0.583, ensemble 0.571; half-relaxed (mean of the LASSO and the refit
forecasts) pair 0.582, ensemble 0.568; the refit after AIC selection 0.722/0.612, ensemble
0.569 (more inputs, more variance); all lags d-1..d-7 (`Lear.lags`, without refit)
0.615/0.639, pair 0.598, ensemble 0.578; rolling(7) and level together
(``level_days=1, norm_days=7``) 0.623, as a third member pair 0.593, ensemble 0.579.

Fifth round (issue 5; the same 2022 and 2021 origins, refit "ols" throughout; numbers as
2022/2021; the ensemble with GBM and Prophet is 0.566/0.675): all tried, none kept, because none
improved the ensemble by 1 % on both years:
- recency weights (exponential, half-life 365 days) in the refit: level 0.640/0.699, rolling
  0.600/0.726, ensemble 0.563/0.675; also in the LASSO (weighted centring): level 0.652/0.710;
- the clear-sky irradiance of the target hour (pvlib, central Austria) and its change from d-1
  as inputs: level 0.630/0.686, rolling 0.602/0.729, ensemble 0.564/0.674;
- d-1 interacted with Monday, Saturday and Sunday (72 more inputs): level 0.630/0.692,
  rolling 0.605/0.724, ensemble 0.567/0.676;
- the level over 7 days (``level_days=7``): 0.632/0.718; as a fifth member 0.572/0.672;
- the MLP (3 seeds) as a fifth member: 0.564/0.681.
Two bounds explain the small gains. The weights with the least MAE on the evaluated year
itself, chosen with hindsight among all 38 variants tried on 2022 (20 on 2021), reach
0.552/0.654, only 2.5 %/3.2 % below the equal-weight ensemble (`backtest.hindsight_mix`;
`bess forecast backtest` prints it for the members it ran). And the daily level
carries about 40 % of the error: with each day's forecast shifted to the actual daily mean,
the ensemble would score 0.378/0.421. The level follows wind, solar and load, which the
shipped data has only until 2020-09. On 2020-04..09 (182 origins, all the history since
2020-01), the actual Austrian load, solar and wind of d and their change from d-1 (stand-ins
for day-ahead forecasts of them) improved the pair only from 0.720 to 0.714. The Austrian price
couples to the German market, whose wind and solar the data does not have.

The model works on the local wall-clock grid (`hourly.to_local_grid`: 24 hours every local
day; the spring gap filled from its neighbours, the doubled autumn hour averaged, and mapped
back the same way), so hour 7 is always 07:00 local and d-7 is the same local hour a week
before, across DST changes too. "Days" are 24-hour blocks aligned to the forecast start (local
days for a start at local midnight). Horizons beyond 24 hours are forecast block by block,
feeding the forecast back as lags.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LassoLarsIC

from domain.forecasting.holidays import holiday_mask
from domain.forecasting.hourly import Hourly, local_hours, local_weekday, to_local_grid

LAGS_DAYS = (1, 2, 3, 7)
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
Z_MARGIN = 0.5  # forecasts stay within the calibration window's range +- this (asinh units)
REFITS = ("none", "median", "lad", "ols")  # `Lear.refit`, see `_refit`
IRLS_STEPS = 30


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


def _lag_features(z: Hourly, block_starts: np.ndarray,
                  lags: tuple[int, ...] = LAGS_DAYS) -> np.ndarray:
    """(blocks, 24 * len(lags)) matrix: the 24 hours of each lagged day block."""
    offs = np.arange(24)
    cols = [z.at(block_starts[:, None] - 24 * d + offs[None, :]) for d in lags]
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
    of the `norm_days` days before the block, else the window's `scaler`; minus the mean of the
    scaled values of the `level_days` days before the block (0: no level)."""
    n = len(starts)
    if norm_days:
        med, mad = rolling_scale(raw, starts, scaler, norm_days)
        bs = BlockScale(med, mad, np.zeros(n))
    else:
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
    blocks = x.reshape(x.shape[0], x.shape[1] // 24, 24)
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
    lags: tuple[int, ...] = LAGS_DAYS

    def _day(self, raw: Hourly, s: int) -> np.ndarray:
        bs = _block_scale(raw, np.array([s]), self.scaler, self.level_days, self.norm_days)
        x = _impute(bs.scaled(_lag_features(raw, np.array([s]), self.lags)) - bs.level[:, None])
        d = _dummies(s + np.arange(24), self.holidays)
        f = x.shape[1]
        pred = self.coef[:, :f] @ x[0] + (self.coef[:, f:] * d).sum(axis=1) + self.intercept
        pred = np.clip(pred + bs.level[0], *self.z_bounds)
        return np.asarray(bs.inverse(pred[None, :])[0])

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        reach = max(self.lags) + max(self.level_days, self.norm_days) + 2
        return recursive_days(known, start, n, self.tz, self.phase, reach, self._day)


def recursive_days(known: Hourly, start: int, n: int, tz: str, phase: int, reach_days: int,
                   day: Callable[[Hourly, int], np.ndarray]) -> np.ndarray:
    """The `n` hours from `start` of a day-block model: `day(raw, s)` forecasts the 24 local
    hours from local hour `s` (blocks start at `phase` modulo 24) from the local grid `raw` of
    the `reach_days` days before; beyond the first block the forecasts are fed back as
    history."""
    targets = local_hours(np.arange(start, start + n), tz)
    block = int(targets[0]) - (int(targets[0]) - phase) % 24  # aligned, <= start
    raw = to_local_grid(known.until(start).since(start - 24 * reach_days), tz).until(block)
    out: list[np.ndarray] = []
    while block + 24 * len(out) <= targets[-1]:
        s = block + 24 * len(out)
        out.append(day(raw, s))
        raw = raw.extended(s, out[-1])
    return np.asarray(np.concatenate(out)[targets - block])


@dataclass(frozen=True)
class Lear:
    """Fit the 24 hour models on the last `window_days` days of the training data (values in
    the series' unit, e.g. EUR/MWh; forecasts in the same unit).

    `holidays`: country code whose public holidays get the Sunday dummy (None: none);
    `level_days`: subtract the mean of the transformed values of that many days before each
    day (0: off); `norm_days`: scale each day by the median/MAD of that many days before it
    (0: the window's median/MAD); `lags`: the lagged days used as inputs; `refit`: see
    `_refit` (`REFITS`). See the module docstring."""

    tz: str
    window_days: int = 364
    criterion: str = "bic"
    name: str = "lear"
    holidays: str | None = None
    level_days: int = 0
    norm_days: int = 0
    lags: tuple[int, ...] = LAGS_DAYS
    refit: str = "none"

    def __post_init__(self) -> None:
        if self.refit not in REFITS:
            raise ValueError(f"unknown refit {self.refit!r}; known: {REFITS}")
        if not self.lags or min(self.lags) < 1:
            raise ValueError("lags must be whole days >= 1")

    def fit(self, train: Hourly) -> LearFit:
        raw = to_local_grid(train.since(train.end - 24 * self.window_days), self.tz)
        if np.isfinite(raw.values).sum() < 24 * (max(self.lags) + 2):
            raise ValueError("lear needs at least 9 days of history")
        end = raw.end
        scaler = Scaler.of(raw.values)
        n_blocks = (end - raw.start) // 24 - max(self.lags)
        if n_blocks < 2:
            raise ValueError("lear needs at least 9 days of history")
        starts = end - 24 * np.arange(n_blocks, 0, -1)
        bs = _block_scale(raw, starts, scaler, self.level_days, self.norm_days)
        x = bs.scaled(_lag_features(raw, starts, self.lags)) - bs.level[:, None]
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
            coef[h], intercept[h] = _refit(xh, y[rows, h], coef[h], intercept[h], self.refit)
        seen = y_scaled[np.isfinite(y_scaled)]
        bounds = (float(seen.min()) - Z_MARGIN, float(seen.max()) + Z_MARGIN)
        return LearFit(scaler, coef, intercept, int(end % 24), self.tz, bounds, self.holidays,
                       self.level_days, self.norm_days, self.lags)


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


def _refit(x: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float,
           how: str) -> tuple[np.ndarray, float]:
    """Refit of the LASSO solution (`coef`, `intercept`) of one hour: "none" keeps it;
    "median" shifts the intercept by the median residual (the L1-optimal constant); "lad"
    refits the coefficients of the selected inputs (and the intercept) without penalty to the
    least absolute deviation, "ols" to least squares (the relaxed LASSO with phi = 0 of
    Meinshausen (2007); post-LASSO OLS of Belloni and Chernozhukov (2013), Bernoulli 19(2))."""
    if how == "none" or len(y) < 3:
        return coef, intercept
    if how == "median":
        return coef, intercept + float(np.median(y - x @ coef - intercept))
    support = np.flatnonzero(coef)
    a = np.concatenate([x[:, support], np.ones((len(y), 1))], axis=1)
    beta = np.linalg.lstsq(a, y, rcond=None)[0]
    if how == "lad":
        beta = _lad_irls(a, y, beta)
    out = np.zeros_like(coef)
    out[support] = beta[:-1]
    return out, float(beta[-1])


def _lad_irls(a: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Least absolute deviation by iteratively reweighted least squares (Schlossmacher
    (1973), JASA 68: weights 1 / |residual|, floored), from the least-squares `beta`."""
    floor = 1e-4 * max(float(np.median(np.abs(y - np.median(y)))), 1e-6)
    for _ in range(IRLS_STEPS):
        w = 1.0 / np.sqrt(np.maximum(np.abs(y - a @ beta), floor))
        beta = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)[0]
    return np.asarray(beta)


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
    refit: str = "none"

    @property
    def window_days(self) -> int:
        return max(m[0] for m in self.members)

    def fit(self, train: Hourly) -> LearAverageFit:
        return LearAverageFit(tuple(
            Lear(self.tz, w, self.criterion, holidays=self.holidays, level_days=lv,
                 norm_days=nd, refit=self.refit).fit(train) for w, lv, nd in self.members))
