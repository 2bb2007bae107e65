"""MLP: a small neural network on LEAR's inputs, all 24 hours of the day at once.

After the DNN of Lago, Marcjasz, De Schutter, Weron (2021), Applied Energy 293, 116983, section
4.3 (and epftoolbox ``epftoolbox/models/_dnn.py``): a multilayer perceptron whose 24 outputs are
the 24 hours of day d, with LEAR's inputs (the 24 values of d-1, d-2, d-3 and d-7 and the
weekday dummies, public holidays as Sunday) and, of their normalisations, the asinh of the
median/MAD scaled values (Uniejewski, Weron, Ziel (2018)). Lago et al. find the DNN the most
accurate single model and the LEAR + DNN average better than either; a multi-output network
errs differently from the 24 separate linear LEARs. Simplified for the runtime: no
hyper-parameter search, one hidden layer, scikit-learn ``MLPRegressor`` (Adam, L2 penalty
`alpha`, fixed ``random_state``, so deterministic; no early stopping: its validation split would
be random), exogenous inputs left out (none for the evaluation years).

The normalisation is LEAR's (`lear.Lear`): ``norm_days=7`` scales each day by the median and
1.4826 MAD of the 7 days before it (the default), ``level_days=1`` the window's scaler
minus the level of the day before. Forecasts are clipped as LEAR's and fed back as lags beyond
the first day (`lear.recursive_days`).

Chosen on 2022 prices only (issue 5, fourth round; every 3rd local midnight, 122 origins, rMAE
against the seasonal naive; members fitted without the validation step; 2023 held out): one
hidden layer of 32 units, alpha 1, rolling(7) normalisation, 1092 days: alone **0.602**
(better than either LEAR member, 0.614/0.618, about 0.5 s a fit); alpha 0.3/3 0.613/0.607;
16 units 0.615; 728 days 0.606; three seeds averaged 0.591 (1.0-1.3 s a fit); level
normalisation 0.649, level and rolling 0.620 (two layers of 64 units, alpha 0.01: 3.5 s a
fit, not run). In the mean with the two refitted LEARs, GBM and Prophet (`pipeline`): 0.564
against 0.566 without (three seeds: 0.564); on 2021 as the second check (the window is
shorter there: the prices start in 2020; MLP alone 0.748, three seeds 0.738) 0.681 against
0.675 without. Not worth its second of runtime per `forecast` on that evidence: "mlp" runs
only when named in `ForecastOptions.models`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.forecasting.hourly import Hourly, to_local_grid
from domain.forecasting.lear import (
    LAGS_DAYS,
    Z_MARGIN,
    Scaler,
    _block_scale,
    _dummies,
    _impute,
    _lag_features,
    recursive_days,
)


@dataclass(frozen=True)
class MlpFit:
    """The fitted networks (their forecasts are averaged) and LEAR's normalisation."""

    models: tuple[Any, ...]
    scaler: Scaler
    phase: int
    tz: str
    z_bounds: tuple[float, float]
    holidays: str | None
    level_days: int
    norm_days: int

    def _day(self, raw: Hourly, s: int) -> np.ndarray:
        bs = _block_scale(raw, np.array([s]), self.scaler, self.level_days, self.norm_days)
        x = _impute(bs.scaled(_lag_features(raw, np.array([s]))) - bs.level[:, None])
        xd = np.concatenate([x, _dummies(np.array([s]), self.holidays)], axis=1)
        z = np.mean([np.asarray(m.predict(xd))[0] for m in self.models], axis=0)
        return np.asarray(bs.inverse(np.clip(z + bs.level[0], *self.z_bounds)[None, :])[0])

    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray:
        reach = max(LAGS_DAYS) + max(self.level_days, self.norm_days) + 2
        return recursive_days(known, start, n, self.tz, self.phase, reach, self._day)


@dataclass(frozen=True)
class Mlp:
    """``MLPRegressor`` with hidden layers `hidden` and L2 penalty `alpha` on the last
    `window_days` days; `seeds` networks (random states 0, 1, ...) averaged. Normalisation and
    `holidays` as `lear.Lear`. See the module docstring."""

    tz: str
    window_days: int = 1092
    holidays: str | None = None
    level_days: int = 0
    norm_days: int = 7
    hidden: tuple[int, ...] = (32,)
    alpha: float = 1.0
    max_iter: int = 300
    seeds: int = 1
    name: str = "mlp"

    def fit(self, train: Hourly) -> MlpFit:
        from sklearn.neural_network import MLPRegressor

        raw = to_local_grid(train.since(train.end - 24 * self.window_days), self.tz)
        end = raw.end
        n_blocks = (end - raw.start) // 24 - max(LAGS_DAYS)
        if n_blocks < 7 or np.isfinite(raw.values).sum() < 24 * (max(LAGS_DAYS) + 7):
            raise ValueError("mlp needs at least 14 days of history")
        scaler = Scaler.of(raw.values)
        starts = end - 24 * np.arange(n_blocks, 0, -1)
        bs = _block_scale(raw, starts, scaler, self.level_days, self.norm_days)
        x = bs.scaled(_lag_features(raw, starts)) - bs.level[:, None]
        y_scaled = bs.scaled(raw.at(starts[:, None] + np.arange(24)[None, :]))
        y = y_scaled - bs.level[:, None]
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        if ok.sum() < 7:
            raise ValueError("mlp needs at least 7 complete days")
        xd = np.concatenate([x, _dummies(starts, self.holidays)], axis=1)[ok]
        models = []
        for seed in range(self.seeds):
            net = MLPRegressor(hidden_layer_sizes=self.hidden, alpha=self.alpha,
                               max_iter=self.max_iter, batch_size=64, learning_rate_init=1e-3,
                               random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
                models.append(net.fit(xd, y[ok]))
        seen = y_scaled[np.isfinite(y_scaled)]
        bounds = (float(seen.min()) - Z_MARGIN, float(seen.max()) + Z_MARGIN)
        return MlpFit(tuple(models), scaler, int(end % 24), self.tz, bounds, self.holidays,
                      self.level_days, self.norm_days)
