"""`forecast`: every model on one history, validated, with residual quantiles and an ensemble.

For an origin, the models work on the hourly means of the history before the origin's hour
(`hourly.to_hourly`) and forecast the hours covering ``[origin, origin + horizon)``; the
hourly values are then put on the output grid (`hourly.expand`: a 15-min step holds its
hour's value). The hour containing a non-hour-aligned origin is forecast, never taken from the
partial history.

Validation (the ensemble weights and the quantiles): each model is fitted once more on the
history before the last `validation_days` days before the origin and forecasts each of those
days day-ahead (with the actual values of the days before it as lags, as it would have in
operation). Its validation MAE is the mean absolute error over those hours.

Quantiles: P10/P90 are P50 plus the empirical 10 % / 90 % quantiles of the model's validation
residuals (actual - forecast) at the same local hour of day +-1 h (pooled over all hours when
fewer than 15 such residuals exist); never crossing P50, clipped at 0 for non-negative
quantities. Deterministic: no sampling anywhere.

Models for prices: the seasonal naive, "lear" (`lear.LearAverage` of a level-normalised and
a rolling-normalised LEAR on `lear_training_days`, public holidays of `ForecastOptions.holidays`
as Sundays, each hour's LASSO refitted by least squares on its selected inputs: `lear_model`),
"gbm" (`gbm.GbmModel`, gradient-boosted trees on LEAR's inputs, 728 days,
`gbm_model`) and "prophet" (`prophet_model.ProphetModel` with the regressors `PROPHET_EXTRA`
and the asinh scaler of the last `PROPHET_SCALE_DAYS` days, on `training_days`). On request
(`ForecastOptions.models`) also "mlp" (`mlp.Mlp`, a small neural network on LEAR's inputs,
`mlp_model`; not in the default set, see below).

Ensemble (`ForecastOptions.ensemble`, default "mean"): the P10, P50 and P90 of the fitted
members averaged with equal weights (`equal_weights`; "lear" counts as its two LEARs, so for
prices each of LEAR-level, LEAR-rolling, GBM and Prophet gets 1/4; the seasonal naive is the
benchmark, not a member). Simple averaging is the robust choice of the forecast-combination
literature (Nowotarski and Weron (2018), Renewable and Sustainable Energy Reviews 81;
Marcjasz, Serafin and Weron (2018), Energies 11, averaging across calibration windows).
"inverse_mae" keeps the earlier rule: weights proportional to 1 / validation MAE (after Bates
and Granger (1969)) among the models within 1.1 times the best validation MAE.

Chosen on 2022 prices only (issue 5; day-ahead from every 3rd local midnight, 122 origins,
rMAE against the seasonal naive; members fitted without the validation step, the inverse-MAE
rule approximated by the members' MAE on the evaluated origins of the 28 days before each
origin; 2023 held out):

| combination | rMAE 2022 |
| --- | ---: |
| LEAR (mean of its two members) alone | 0.586 |
| inverse-MAE, cutoff 1.1 (naive, LEAR, Prophet), the earlier rule | 0.608 |
| inverse-MAE, all members (LEAR, Prophet) | 0.591 |
| mean of LEAR and Prophet (1/2 each) | 0.594 |
| median of naive, LEAR and Prophet | 0.619 |
| mean of LEAR-level, LEAR-rolling, Prophet (1/3 each) | 0.583 |
| + GBM (HistGradientBoosting, absolute loss, 200 iterations, 728 days): mean of 4 | 0.576 |
| + GBM (squared loss, 100 iterations, learning rate 0.1, 728 days): mean of 4 | **0.571** |
| the same, GBM on 364 days / 50 iterations of 15 leaves | 0.579 / 0.574 |
| mean of LEAR (1/3), Prophet, GBM; median of the three | 0.573 / 0.576 |
| mean of LEAR (1/3), Prophet, GBM with LEAR of four members (+ level/rolling 728 days) | 0.574 |
| inverse-MAE over LEAR, Prophet, GBM (no cutoff / cutoff 1.1 with naive) | 0.573 / 0.606 |
| mean of 4 with the chosen Prophet (7-day scaler, 0.665 alone instead of 0.684) | 0.573 |

GBM alone scored 0.631 (the absolute-loss one 0.641). The Prophet variant was chosen on
Prophet's own rMAE (`prophet_model`), which costs the ensemble 0.002 on 2022. 2023, all 365
origins, run once after the choice: ensemble 0.627, LEAR 0.632, GBM 0.702, Prophet 0.745.

Fourth round (issue 5; the same 122 origins of 2022 for every choice, 2021 (every 3rd local
midnight, 122 origins; shorter LEAR windows, the prices start in 2020) as a second check;
"L" is the LEAR pair, "L-ols" the pair refitted by least squares; 2023 held out):

| combination | rMAE 2022 | rMAE 2021 |
| --- | ---: | ---: |
| mean of L, GBM, Prophet (the third round's choice) | 0.573 | 0.688 |
| median of the four / of L, GBM, Prophet and two MLPs | 0.581 / 0.576 | 0.689 / 0.696 |
| fixed weights 0.3/0.3/0.2/0.2, 0.25/0.25/0.3/0.2 | 0.573 / 0.572 | |
| LAD weights (Nowotarski et al. 2014, Energy Econ. 46) fitted on the other year | 0.583 | 0.684 |
| mean of L, GBM (absolute loss, 100 iterations), Prophet; with both GBMs | 0.579 / 0.576 | |
| L-ols (LEAR refitted by least squares, `lear`) and GBM, Prophet | **0.566** | **0.675** |
| the same with Prophet left out / GBM left out | 0.570 / 0.581 | 0.691 / 0.669 |
| the same, median of the four; weights 0.3/0.3/0.2/0.2 | 0.573 / 0.566 | 0.676 / 0.674 |
| L-ols, GBM, Prophet + MLP (`mlp`, 1 / 3 seeds) | 0.564 / 0.564 | 0.681 / 0.681 |
| L-ols, GBM, Prophet + MLP + MLP with level normalisation | 0.562 | 0.688 |
| L (no refit), GBM, Prophet + MLP; + MLP with level normalisation | 0.569 / 0.565 | 0.691 / 0.697 |
| L-ols with rolling(3) instead of rolling(7), GBM, Prophet | 0.564 | |

Chosen: L-ols, GBM and Prophet, equal weights (the refit helps in both years; the MLP's gain
on 2022 is within the noise, it loses on 2021 and costs about 1 s per `forecast`). The full
pipeline on the 2022 origins (`bess forecast backtest`): ensemble 0.566, LEAR 0.585, GBM
0.631, Prophet 0.665. 2023, all 365 origins, run once after the choice: ensemble 0.623, LEAR
0.627, GBM 0.702, Prophet 0.745 (the issue's 0.6 still missed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from domain.forecasting.gbm import GbmModel
from domain.forecasting.hourly import (
    HOUR_NS,
    Hourly,
    expand,
    hour_of,
    local_time,
    timestamps,
    to_hourly,
)
from domain.forecasting.lear import LearAverage
from domain.forecasting.mlp import Mlp
from domain.forecasting.naive import Profile, SeasonalNaive
from domain.forecasting.prophet_model import ProphetModel
from domain.forecasting.types import MODELS, QUANTITIES, Forecast, ForecastOptions, as_utc

MIN_LOCAL_RESIDUALS = 15
ENSEMBLE_CUTOFF = 1.1
PROPHET_EXTRA = ("naive", "last")
PROPHET_SCALE_DAYS = 7
GBM_WINDOW_DAYS = 728
LEAR_REFIT = "ols"


def prophet_model(tz: str, quantity: str = "price") -> ProphetModel:
    """The "prophet" model as `forecast` runs it (asinh transform for prices only)."""
    price = quantity == "price"
    return ProphetModel(tz, transform=price, extra=PROPHET_EXTRA,
                        scale_days=PROPHET_SCALE_DAYS if price else None)


def lear_members(window_days: int) -> tuple[tuple[int, int, int], ...]:
    """The members of the "lear" model (`LearAverage`): one window, two normalisations."""
    return ((window_days, 1, 0), (window_days, 0, 7))


def lear_model(tz: str, holidays: str | None, window_days: int) -> LearAverage:
    """The "lear" model as `forecast` runs it: `lear_members`, each LASSO refitted by least
    squares on its selected inputs (`LEAR_REFIT`, chosen on 2022, see `lear`)."""
    return LearAverage(tz, lear_members(window_days), holidays=holidays, refit=LEAR_REFIT)


def gbm_model(tz: str, holidays: str | None, window_days: int = GBM_WINDOW_DAYS) -> GbmModel:
    """The "gbm" member as `forecast` runs it (settings chosen on 2022, see `gbm`)."""
    return GbmModel(tz, window_days, holidays=holidays, max_iter=100, learning_rate=0.1,
                    loss="squared_error")


def mlp_model(tz: str, holidays: str | None, window_days: int) -> Mlp:
    """The "mlp" member as `forecast` runs it (settings chosen on 2022, see `mlp`)."""
    return Mlp(tz, window_days, holidays=holidays, hidden=(32,), alpha=1.0, norm_days=7)


FIT_ERRORS = (ValueError, RuntimeError, ArithmeticError, np.linalg.LinAlgError)


class Predictor(Protocol):
    def predict(self, known: Hourly, start: int, n: int) -> np.ndarray: ...


class Model(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, train: Hourly) -> Any: ...


@dataclass(frozen=True)
class _Run:
    """One model's hourly result."""

    name: str
    p50: np.ndarray           # hourly
    residuals: np.ndarray     # validation residuals (actual - forecast)
    residual_hours: np.ndarray
    train: Hourly
    validation_pred: np.ndarray | None = None  # aligned with the validation actuals
    members: int = 1  # fitted models averaged inside it (a `LearAverage` has several)

    @property
    def validation_mae(self) -> float | None:
        return float(np.mean(np.abs(self.residuals))) if len(self.residuals) else None


class FitCache:
    """Fitted models by (model, first hour, end hour) of their training window, for a backtest
    over one fixed series: the validation fit of the origin d is the final fit of d - 7 days.
    Keeps the `size` newest entries. Never share one between different histories."""

    def __init__(self, size: int = 160) -> None:
        self.size = size
        self._fits: dict[tuple[Any, int, int], Any] = {}

    def fit(self, model: Model, train: Hourly, first: int, end: int) -> Any:
        key = (model, first, end)
        if key not in self._fits:
            self._fits[key] = model.fit(train)
            while len(self._fits) > self.size:
                del self._fits[next(iter(self._fits))]
        return self._fits[key]


def _fit(model: Model, hourly: Hourly, first: int, end: int, cache: FitCache | None) -> Any:
    train = hourly.since(first).until(end)
    return model.fit(train) if cache is None else cache.fit(model, train, first, end)


def _models(quantity: str, n_days: float, options: ForecastOptions) -> list[tuple[Model, int]]:
    """(model, training window in days) to run, seasonal naive first."""
    tz = options.timezone
    if options.models is None:  # profile: a load / PV model (rMAE 1.2-1.7 on 2022 prices);
        # gbm: chosen on prices only; mlp: on request (see `mlp`)
        chosen = set(MODELS) - ({"profile", "mlp"} if quantity == "price"
                                else {"gbm", "mlp"})
    else:
        chosen = set(options.models)
    runs: list[tuple[Model, int]] = [(SeasonalNaive(quantity, tz), options.training_days)]
    if n_days < options.min_history_days:
        return runs
    if "profile" in chosen:
        runs.append((Profile(quantity, tz), options.training_days))
    if "lear" in chosen:
        w = options.lear_training_days
        runs.append((lear_model(tz, options.holidays, w), w))
    if "gbm" in chosen:
        w = min(GBM_WINDOW_DAYS, options.lear_training_days)
        runs.append((gbm_model(tz, options.holidays, w), w))
    if "mlp" in chosen:
        w = options.lear_training_days
        runs.append((mlp_model(tz, options.holidays, w), w))
    if "prophet" in chosen and options.prophet:
        runs.append((prophet_model(tz, quantity), options.training_days))
    return runs


def _run(model: Model, hourly: Hourly, window_days: int, start: int, n_hours: int,
         validation_days: int, cache: FitCache | None) -> _Run:
    train = hourly.since(start - 24 * window_days)
    actuals, preds, hours = [], [], []
    if validation_days:
        val_start = start - 24 * validation_days
        fitted = _fit(model, hourly, val_start - 24 * window_days, val_start, cache)
        day_ahead = getattr(fitted, "predict_day_ahead", None)
        if day_ahead is not None:  # all validation days in one call
            hours = [np.arange(val_start, start)]
            actuals = [hourly.at(hours[0])]
            preds = [day_ahead(hourly.until(start), val_start, start - val_start)]
        else:
            for k in range(validation_days):
                s = val_start + 24 * k
                day = np.arange(s, s + 24)
                actual = hourly.at(day)
                before = hourly.until(s).values
                if np.isfinite(actual).any() and np.isfinite(before).any():
                    actuals.append(actual)
                    preds.append(fitted.predict(hourly.until(s), s, 24))
                    hours.append(day)
    fitted = _fit(model, hourly, start - 24 * window_days, start, cache)
    p50 = np.asarray(fitted.predict(hourly, start, n_hours), dtype=np.float64)
    if not np.isfinite(p50).all():
        raise ValueError(f"{model.name} produced non-finite values")
    size = len(getattr(model, "members", (model,)))
    if actuals:
        a, p, h = np.concatenate(actuals), np.concatenate(preds), np.concatenate(hours)
        ok = np.isfinite(a) & np.isfinite(p)
        return _Run(model.name, p50, (a - p)[ok], h[ok], train, p[ok], size)
    return _Run(model.name, p50, np.empty(0), np.empty(0, dtype=np.int64), train, None, size)


def _quantile_offsets(run: _Run, target_hours: np.ndarray, fallback_sd: float,
                      tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Per target hour: (q10, q90) of the residuals at the same local hour of day +-1 h."""
    res = run.residuals
    if len(res) == 0:
        z = 1.2816 * fallback_sd
        return np.full(len(target_hours), -z), np.full(len(target_hours), z)
    res_hod = local_time(run.residual_hours, tz).hour
    tgt_hod = local_time(target_hours, tz).hour
    q10, q90 = np.empty(len(target_hours)), np.empty(len(target_hours))
    pooled = np.quantile(res, [0.1, 0.9])
    cache: dict[int, tuple[float, float]] = {}
    for i, h in enumerate(tgt_hod):
        if int(h) not in cache:
            dist = np.abs(res_hod - h)
            near = res[np.minimum(dist, 24 - dist) <= 1]
            lo, hi = np.quantile(near, [0.1, 0.9]) if len(near) >= MIN_LOCAL_RESIDUALS else pooled
            cache[int(h)] = (min(float(lo), 0.0), max(float(hi), 0.0))
        q10[i], q90[i] = cache[int(h)]
    return q10, q90


def _bounds(train: Hourly) -> tuple[datetime | None, datetime | None]:
    b = train.valid_bounds()
    if b is None:
        return None, None
    ts = timestamps(np.array([b[0], b[1] + 1]))
    return ts[0].to_pydatetime(), ts[1].to_pydatetime()


def forecast(history: pd.Series, *, quantity: str, unit: str, origin: datetime,
             options: ForecastOptions = ForecastOptions(),
             fit_cache: FitCache | None = None) -> dict[str, Forecast]:
    """Every model's forecast of `quantity` over ``[origin, origin + horizon)`` at `step_s`.

    `history`: float values indexed by tz-aware timestamps (hour-beginning hourly or finer, gaps
    and NaN allowed); only points before `origin` are used. Always returns "seasonal_naive";
    with at least `min_history_days` days of data also profile, lear and prophet (as chosen
    in `options`), and "ensemble" when more than one model ran. A model whose fit fails on the
    data is left out. `fit_cache`: only for backtests over one fixed series. Raises ValueError
    on an empty history, an unknown quantity or a naive `origin`.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; known: {QUANTITIES}")
    origin_ts = as_utc(origin)
    n_steps = options.horizon_s // options.step_s
    origin_ns = int(origin_ts.as_unit("ns").value)
    start = hour_of(origin_ts)
    end = -(-(origin_ns + n_steps * options.step_s * 1_000_000_000) // HOUR_NS)
    hourly = to_hourly(history, start).since(start - 24 * options.history_days)
    if hourly.n_valid == 0:
        raise ValueError("empty history: no finite value before the origin")
    nonneg = quantity == "pv" if options.nonnegative is None else options.nonnegative
    target_hours = np.arange(start, end, dtype=np.int64)
    values = hourly.values[np.isfinite(hourly.values)]
    fallback_sd = float(np.std(values))

    runs: list[_Run] = []
    for model, window_days in _models(quantity, hourly.n_valid / 24, options):
        try:
            runs.append(_run(model, hourly, window_days, start, len(target_hours),
                             options.validation_days, fit_cache))
        except FIT_ERRORS:
            if model.name == "seasonal_naive":
                raise
    index = pd.date_range(origin_ts, periods=n_steps, freq=pd.Timedelta(seconds=options.step_s))

    def to_forecast(name: str, qs: list[np.ndarray], train: Hourly, mae: float | None,
                    weight: float | None = None) -> Forecast:
        steps = [expand(q, start, origin_ns, n_steps, options.step_s) for q in qs]
        t0, t1 = _bounds(train)
        return Forecast(quantity=quantity, model=name, unit=unit, index=index, p10=steps[0],
                        p50=steps[1], p90=steps[2], training_start=t0, training_end=t1,
                        validation_mae=mae, weight=weight)

    out: dict[str, Forecast] = {}
    hourly_qs: dict[str, list[np.ndarray]] = {}
    for r in runs:
        q10, q90 = _quantile_offsets(r, target_hours, fallback_sd, options.timezone)
        qs = [r.p50 + q10, r.p50, r.p50 + q90]
        hourly_qs[r.name] = [np.maximum(q, 0.0) for q in qs] if nonneg else qs
        out[r.name] = to_forecast(r.name, hourly_qs[r.name], r.train, r.validation_mae)
    if len(runs) > 1:
        weights = (ensemble_weights({r.name: r.validation_mae for r in runs})
                   if options.ensemble == "inverse_mae"
                   else equal_weights({r.name: r.members for r in runs}))
        members = [r for r in runs if weights.get(r.name, 0.0) > 0]
        combined = [np.sum([weights[r.name] * hourly_qs[r.name][i] for r in members], axis=0)
                    for i in range(3)]
        combined[0] = np.minimum(combined[0], combined[1])  # ordered up to rounding
        combined[2] = np.maximum(combined[2], combined[1])
        widest = max(members, key=lambda r: r.train.end - r.train.start).train
        out = {k: _with_weight(f, weights.get(k)) for k, f in out.items()}
        out["ensemble"] = to_forecast("ensemble", combined, widest,
                                      _ensemble_mae(members, weights))
    return out


def equal_weights(sizes: dict[str, int]) -> dict[str, float]:
    """The plain mean of the fitted members: each model weighted by its number of members
    (`sizes`: 2 for the "lear" average of two LEARs, else 1), the seasonal naive (the
    benchmark) left out unless it is the only model. Sums to 1."""
    kept = {k: n for k, n in sizes.items() if k != "seasonal_naive"} or dict(sizes)
    total = sum(kept.values())
    return {k: kept.get(k, 0) / total for k in sizes}


def ensemble_weights(maes: dict[str, float | None],
                     cutoff: float = ENSEMBLE_CUTOFF) -> dict[str, float]:
    """Weights proportional to 1 / validation MAE among the models within `cutoff` times the
    best MAE; equal weights when no model was validated. Sums to 1."""
    valid = {k: v for k, v in maes.items() if v is not None and np.isfinite(v)}
    if not valid:
        return {k: 1.0 / len(maes) for k in maes}
    best_mae = min(valid.values())
    if best_mae <= 0:
        return {k: (1.0 if k == min(valid, key=valid.__getitem__) else 0.0) for k in maes}
    raw = {k: (1.0 / v if v <= cutoff * best_mae else 0.0) for k, v in valid.items()}
    total = sum(raw.values())
    return {k: raw.get(k, 0.0) / total for k in maes}


def _ensemble_mae(members: list[_Run], weights: dict[str, float]) -> float | None:
    """Validation MAE of the weighted combination (optimistic: the weights saw the same days)."""
    preds = [r.validation_pred for r in members]
    if any(p is None for p in preds) or len({len(r.residuals) for r in members}) != 1:
        return None
    actual = np.asarray(preds[0]) + members[0].residuals
    combo = np.sum([weights[r.name] * np.asarray(p) for r, p in zip(members, preds, strict=True)],
                   axis=0)
    return float(np.mean(np.abs(actual - combo))) if len(actual) else None


def _with_weight(f: Forecast, weight: float | None) -> Forecast:
    return replace(f, weight=weight)


def best(forecasts: dict[str, Forecast]) -> Forecast:
    """The ensemble if present, else the model with the lowest validation MAE, else the naive."""
    if not forecasts:
        raise ValueError("no forecasts")
    if "ensemble" in forecasts:
        return forecasts["ensemble"]
    scored = [f for f in forecasts.values() if f.validation_mae is not None]
    if scored:
        return min(scored, key=lambda f: f.validation_mae or 0.0)
    return forecasts.get("seasonal_naive") or next(iter(forecasts.values()))
