"""`bess forecast backtest`: rolling-origin day-ahead backtest of the forecasting models on the
real data shipped in `data/` (see `domain.forecasting.backtest`).

Registered on the main app as the sub-app `forecast` (in `infra.cli`)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from infra.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"
AT_CSV = DATA / "at_hourly_2015_2023.csv"
HOUSEHOLD_CSV = DATA / "household_residential4_hourly.csv"

forecast_app = typer.Typer(help="Price, load and PV forecasts.", no_args_is_help=True)


@dataclass(frozen=True)
class Dataset:
    """A backtest series and its defaults."""

    quantity: str
    unit: str
    column: str
    path: Path
    start: date
    end: date
    timezone: str
    holidays: str | None  # country whose public holidays count as Sundays (lear)


DATASETS: dict[str, Dataset] = {
    "price": Dataset("price", "EUR/MWh", "price_eur_mwh", AT_CSV, date(2023, 1, 1),
                     date(2023, 12, 31), "Europe/Vienna", "AT"),
    "load": Dataset("load", "MW", "load_mw", AT_CSV, date(2019, 1, 1), date(2019, 12, 31),
                    "Europe/Vienna", "AT"),
    "household-load": Dataset("load", "kW", "load_kw", HOUSEHOLD_CSV, date(2016, 3, 1),
                              date(2017, 2, 8), "Europe/Berlin", "DE"),
    "household-pv": Dataset("pv", "kW", "pv_kw", HOUSEHOLD_CSV, date(2016, 3, 1),
                            date(2017, 2, 8), "Europe/Berlin", "DE"),
}


def read_series(path: Path, column: str) -> pd.Series:
    """One column of a shipped hourly CSV, indexed by its UTC hour (empty cells dropped)."""
    frame = pd.read_csv(path, usecols=["timestamp_utc", column])
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    series = pd.Series(frame[column].to_numpy(dtype=float), index=index, name=column)
    return series.dropna()


def quiet_libraries() -> None:
    """cmdstanpy logs every fit at INFO (to its own stderr handler, which it adds only when
    its logger has none); prophet logs a plotly notice on import."""
    for name, level in (("cmdstanpy", logging.WARNING), ("prophet", logging.WARNING),
                        ("prophet.plot", logging.CRITICAL)):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        logger.setLevel(level)


def single_threaded_blas() -> None:
    """Many small least-squares problems: BLAS threads only contend (2-core machine)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def scores_table(scores: dict[str, object], unit: str) -> str:
    """Markdown table of `domain.forecasting.Scores` per model, the naive first."""
    from domain.forecasting import Scores

    lines = [f"| model | hours | MAE ({unit}) | RMSE ({unit}) | sMAPE % | rMAE | P10-P90 cover |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    order = sorted(scores, key=lambda m: (m != "seasonal_naive", m == "ensemble", m))
    for model in order:
        s = scores[model]
        assert isinstance(s, Scores)
        cover = "" if s.coverage is None else f"{100 * s.coverage:.0f} %"
        lines.append(f"| {model} | {s.n} | {s.mae:.2f} | {s.rmse:.2f} | {s.smape:.1f} | "
                     f"{s.rmae:.3f} | {cover} |")
    return "\n".join(lines)


@forecast_app.command("backtest")
def backtest_command(
    quantity: Annotated[str, typer.Option(
        help="price (AT day-ahead, 2023), load (AT total load, 2019), household-load or "
             "household-pv (residential4, Mar 2016 - Feb 2017)")] = "price",
    start: Annotated[str | None, typer.Option(help="first evaluated day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last evaluated day, YYYY-MM-DD")] = None,
    models: Annotated[str | None, typer.Option(
        help="comma-separated subset of profile,lear,gbm,mlp,prophet (seasonal_naive always "
             "runs); default: lear,gbm,prophet for price, profile,lear,prophet for load and "
             "PV")] = None,
    ensemble: Annotated[str, typer.Option(
        help="mean (of the members, default) or inverse_mae (the earlier rule)")] = "mean",
    every: Annotated[int, typer.Option(help="evaluate every N-th day")] = 1,
    training_days: Annotated[int, typer.Option(help="window of naive/profile/prophet")] = 56,
    lear_training_days: Annotated[int, typer.Option(help="calibration window of lear")] = 1092,
    validation_days: Annotated[int, typer.Option(help="days scored before each origin")] = 28,
    output: Annotated[Path | None, typer.Option(help="write the hourly forecasts to CSV")]
    = None,
) -> None:
    """Rolling-origin day-ahead backtest: MAE, RMSE, sMAPE, rMAE per model vs seasonal naive."""
    from domain.forecasting import ForecastOptions, backtest
    from domain.forecasting.backtest import hindsight_mix

    if quantity not in DATASETS:
        raise typer.BadParameter(f"choose one of {', '.join(DATASETS)}", param_hint="--quantity")
    ds = DATASETS[quantity]
    chosen = None if models is None else tuple(
        m.strip() for m in models.split(",") if m.strip() and m.strip() != "seasonal_naive")
    try:
        options = ForecastOptions(training_days=training_days,
                                  lear_training_days=lear_training_days,
                                  validation_days=validation_days, models=chosen,
                                  timezone=ds.timezone, holidays=ds.holidays,
                                  ensemble=ensemble)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    quiet_libraries()
    single_threaded_blas()
    series = read_series(ds.path, ds.column)
    first = date.fromisoformat(start) if start else ds.start
    last = date.fromisoformat(end) if end else ds.end
    began = time.perf_counter()

    def progress(i: int, n: int) -> None:
        if sys.stderr.isatty() or i == n or i % 30 == 0:
            sys.stderr.write(f"\r{i}/{n} origins, {time.perf_counter() - began:.0f} s ")
            sys.stderr.flush()

    result = backtest(series, quantity=ds.quantity, unit=ds.unit, start=first, end=last,
                      every=every, options=options, on_origin=progress)
    sys.stderr.write("\n")
    elapsed = time.perf_counter() - began
    typer.echo(f"{quantity} ({ds.column}, {ds.unit}), {first} .. {last}, every {every} day(s): "
               f"{result.origins} day-ahead origins at local midnight ({ds.timezone}), "
               f"{elapsed:.0f} s")
    typer.echo(scores_table(dict(result.scores), ds.unit))
    typer.echo("rMAE = MAE / MAE of seasonal_naive on the same hours (< 1: better than naive).")
    mix = hindsight_mix(result.frame, result.members)
    typer.echo(f"Ceiling for any weighting of the members: rMAE {mix.scores.rmae:.3f} "
               f"(MAE {mix.scores.mae:.2f} {ds.unit}) with {mix.describe(ds.unit)}, fitted on "
               f"these hours' actuals (hindsight, not a forecast).")
    if output is not None:
        result.frame.to_csv(output, index_label="timestamp_utc")
        typer.echo(f"hourly forecasts: {output}")
