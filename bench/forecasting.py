"""Forecasting benchmark: Prophet's fit + predict time and the 2023 forecast errors.

``.venv/bin/python -m bench.forecasting [--every N] [--repeats R] [--quick]``

Input: the real hourly AT day-ahead prices of ``data/at_hourly_2015_2023.csv``. One process,
BLAS limited to one thread (small problems; threads only contend), cmdstanpy quiet.

1. Fit + predict time on one year of hourly prices of one market (2023, 8,760 hours, forecast
   the next 24 hours), median of R repeats, for the models as `forecast` runs them: Prophet
   (``domain.forecasting.prophet_model``: weekly, weekday and weekend daily profiles and the
   lagged regressors on asinh-scaled prices; also Prophet with the library's defaults) and
   LEAR (`pipeline.lear_model`, the two members `forecast` runs, 1092-day window), GBM.
   References in the same run: a design like Prophet's (linear trend and the same Fourier
   terms, no regressors) solved as one ridge regression (scikit-learn ``Ridge``), and the
   seasonal naive forecast.
   Plus one complete ``forecast`` call with the default options (every model, validation,
   ensemble): what the forecast processor spends per market and run.
2. Errors on 2023: the rolling-origin day-ahead backtest of ``bess forecast backtest`` (every
   N-th day; default every day, ~12 min on 2 shared cores): MAE and rMAE (MAE / MAE of the seasonal
   naive on the same hours) per model. Beside them a ceiling for any weighting of the members:
   `backtest.hindsight_mix`, the weights (and intercept) with the least MAE on the 2023 hours
   themselves, chosen knowing the actuals.

Output: a markdown table on stdout and everything measured in ``bench/out/forecasting.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from domain.forecasting import ForecastOptions, backtest, forecast
from domain.forecasting.backtest import hindsight_mix
from domain.forecasting.hourly import hour_of, to_hourly
from domain.forecasting.naive import SeasonalNaive
from domain.forecasting.pipeline import GBM_WINDOW_DAYS, gbm_model, lear_model, prophet_model
from infra.cli_forecast import AT_CSV, quiet_libraries, read_series, single_threaded_blas

OUT = Path(__file__).resolve().parent / "out" / "forecasting.json"
TZ = "Europe/Vienna"
YEAR_END = datetime(2023, 12, 31, 23, tzinfo=UTC)  # local midnight 2024-01-01


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall time of `repeats` calls (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def ridge_design(hours: np.ndarray) -> np.ndarray:
    """Prophet's design without its priors: trend, weekly (order 3), weekday and weekend daily
    profiles (order 6 each), as in `ProphetModel`."""
    local = pd.DatetimeIndex(pd.to_datetime(hours * 3600, unit="s", utc=True)).tz_convert(TZ)
    t = (hours - hours[0]) / max(1, hours[-1] - hours[0])
    day = (local.hour.to_numpy() + local.minute.to_numpy() / 60) / 24
    week = (local.day_of_week.to_numpy() + day) / 7
    weekend = (local.day_of_week.to_numpy() >= 5).astype(float)
    cols = [t]
    for k in range(1, 4):
        cols += [np.sin(2 * np.pi * k * week), np.cos(2 * np.pi * k * week)]
    for k in range(1, 7):
        s, c = np.sin(2 * np.pi * k * day), np.cos(2 * np.pi * k * day)
        cols += [s * (1 - weekend), c * (1 - weekend), s * weekend, c * weekend]
    return np.column_stack(cols)


def fit_times(prices: pd.Series, repeats: int) -> dict[str, Any]:
    from sklearn.linear_model import Ridge

    start = hour_of(pd.Timestamp(YEAR_END))
    year = to_hourly(prices, start).since(start - 365 * 24)
    lear_days = ForecastOptions().lear_training_days
    lear_train = to_hourly(prices, start).since(start - (lear_days + 8) * 24)
    out: dict[str, Any] = {"hours": int(year.n_valid)}

    def prophet() -> np.ndarray:
        return prophet_model(TZ).fit(year).predict(year, start, 24)

    def ridge() -> np.ndarray:
        ok = np.isfinite(year.values)
        hours = year.start + np.flatnonzero(ok)
        model = Ridge(alpha=1.0).fit(ridge_design(hours), year.values[ok])
        future = np.arange(hours[0], start + 24)
        return np.asarray(model.predict(ridge_design(future)[-24:]))

    def prophet_defaults() -> np.ndarray:
        from prophet import Prophet

        ok = np.isfinite(year.values)
        ds = pd.to_datetime((year.start + np.flatnonzero(ok)) * 3600, unit="s")
        m = Prophet(uncertainty_samples=0).fit(pd.DataFrame({"ds": ds, "y": year.values[ok]}))
        future = pd.DataFrame({"ds": pd.date_range(ds[-1] + pd.Timedelta(hours=1), periods=24,
                                                   freq="h")})
        return np.asarray(m.predict(future)["yhat"])

    def lear() -> np.ndarray:
        return lear_model(TZ, "AT", lear_days).fit(lear_train).predict(lear_train, start, 24)

    def gbm() -> np.ndarray:
        w = GBM_WINDOW_DAYS
        return gbm_model(TZ, "AT", w).fit(lear_train).predict(lear_train, start, 24)

    def naive() -> np.ndarray:
        return SeasonalNaive("price", TZ).predict(year, start, 24)

    prophet()  # warm-up: import, compiled model load
    for name, fn in (("prophet", prophet), ("prophet_defaults", prophet_defaults),
                     ("ridge", ridge), ("lear", lear), ("gbm", gbm),
                     ("naive", naive)):
        out[f"{name}_s"], _ = timed(fn, repeats)
    history = prices[prices.index < pd.Timestamp(YEAR_END)]
    out["forecast_default_s"], fcs = timed(
        lambda: forecast(history, quantity="price", unit="EUR/MWh", origin=YEAR_END), 1)
    out["forecast_models"] = sorted(fcs)
    return out


def errors(prices: pd.Series, every: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = backtest(prices, quantity="price", unit="EUR/MWh", start=date(2023, 1, 1),
                      end=date(2023, 12, 31), every=every, options=ForecastOptions())
    seconds = time.perf_counter() - t0
    mix = hindsight_mix(result.frame, result.members)
    return {"every": every, "origins": result.origins, "seconds": seconds,
            "scores": {m: vars(s) for m, s in result.scores.items()},
            "hindsight_mix": {"weights": mix.weights, "intercept": mix.intercept,
                              "text": mix.describe("EUR/MWh"), "scores": vars(mix.scores)}}


def table(fit: dict[str, Any], err: dict[str, Any]) -> str:
    ms = 1000.0
    scores = err["scores"]
    naive_mae = scores["seasonal_naive"]["mae"]
    best = min((m for m in scores if m != "seasonal_naive"), key=lambda m: scores[m]["rmae"])
    p = scores.get("prophet", {}).get("rmae", float("nan"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    best_ok = scores[best]["rmae"] <= 0.6
    mix = err["hindsight_mix"]
    rows = [
        "| measurement | system | reference (same run) | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| Prophet fit + predict, 1 year hourly ({fit['hours']:,} h), one market | "
        f"{fit['prophet_s']:.2f} s | {fit['ridge_s'] * ms:.0f} ms ridge on Prophet's design; "
        f"{fit['naive_s'] * ms:.1f} ms seasonal naive | {fit['prophet_s'] / fit['ridge_s']:.0f}x "
        f"ridge | <= 2 s: {verdict(fit['prophet_s'] <= 2.0)} |",
        f"| the same with Prophet's defaults (linear trend, daily + weekly, UTC) | "
        f"{fit['prophet_defaults_s']:.2f} s | | | <= 2 s: "
        f"{verdict(fit['prophet_defaults_s'] <= 2.0)} |",
        f"| LEAR fit + predict (two members, {ForecastOptions().lear_training_days}-day "
        f"window) | {fit['lear_s']:.2f} s | | | |",
        f"| GBM fit + predict ({GBM_WINDOW_DAYS}-day window) | {fit['gbm_s']:.2f} s | | | |",
        f"| `forecast()` with the default options (naive, LEAR, GBM, Prophet, each fitted twice "
        f"for validation; ensemble), one market | "
        f"{fit['forecast_default_s']:.1f} s | | | |",
        f"| rMAE 2023, Prophet | {p:.3f} | seasonal naive MAE {naive_mae:.2f} EUR/MWh | | "
        f"<= 0.75: {verdict(p <= 0.75)} |",
        f"| rMAE 2023, best model ({best}) | {scores[best]['rmae']:.3f} | "
        f"MAE {scores[best]['mae']:.2f} EUR/MWh | | <= 0.6: {verdict(best_ok)} |",
        f"| ceiling: rMAE 2023 of the members' best weighted mix, weights fitted on 2023 "
        f"itself (hindsight, not a forecast: {mix['text']}) | {mix['scores']['rmae']:.3f} | "
        f"MAE {mix['scores']['mae']:.2f} EUR/MWh | | |",
    ]
    detail = ["", f"2023 backtest: {err['origins']} day-ahead origins (every {err['every']}. day), "
              f"{err['seconds']:.0f} s", "", "| model | MAE | RMSE | sMAPE % | rMAE |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for m, s in scores.items():
        detail.append(f"| {m} | {s['mae']:.2f} | {s['rmse']:.2f} | {s['smape']:.1f} | "
                      f"{s['rmae']:.3f} |")
    return "\n".join(rows + detail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=1, help="backtest every N-th day of 2023")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    ap.add_argument("--quick", action="store_true", help="--every 5 --repeats 1 (every "
                    "weekday still appears; every 7th day would be one weekday only)")
    args = ap.parse_args(argv)
    if args.quick:
        args.every, args.repeats = 5, 1
    quiet_libraries()
    single_threaded_blas()
    prices = read_series(AT_CSV, "price_eur_mwh")
    fit = fit_times(prices, args.repeats)
    err = errors(prices, args.every)
    print(table(fit, err))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"cpus": os.cpu_count(), "fit": fit, "errors": err}, indent=2,
                              default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
