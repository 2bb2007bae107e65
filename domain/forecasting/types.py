"""The value objects of forecasting: a forecast with its quantiles, and the options of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

QUANTITIES: tuple[str, ...] = ("price", "load", "pv")
UNITS: dict[str, str] = {"price": "EUR/MWh", "load": "kW", "pv": "kW"}
MODELS: tuple[str, ...] = ("seasonal_naive", "profile", "lear", "gbm", "mlp", "prophet")
"""The history-based models `forecast` knows, in the order they run (the ensemble comes last)."""
ENSEMBLE_RULES: tuple[str, ...] = ("mean", "inverse_mae")
"""How `forecast` combines the models into "ensemble" (`ForecastOptions.ensemble`)."""


@dataclass(frozen=True, eq=False)
class Forecast:
    """Quantiles of one quantity over ``[index[0], index[-1] + step)``, one value per step.

    `index` is tz-aware UTC and regular; ``index[0]`` is the origin. ``p10 <= p50 <= p90``.
    `training_start`/`training_end` bound the history the model saw (None when it saw none,
    as clear_sky). `validation_mae` is the model's mean absolute error on the validation days
    before the origin (None when not validated); `weight` its share in the ensemble (None when
    it is not a member). Arrays are read-only float64. ``eq=False``: compare arrays explicitly.
    """

    quantity: str
    model: str
    unit: str
    index: pd.DatetimeIndex
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    training_start: datetime | None
    training_end: datetime | None
    validation_mae: float | None = None
    weight: float | None = None
    _step_s: int = field(default=0, repr=False, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.index, pd.DatetimeIndex) or len(self.index) == 0:
            raise ValueError("index must be a non-empty DatetimeIndex")
        if self.index.tz is None or str(self.index.tz) != "UTC":
            raise ValueError("index must be tz-aware UTC")
        n = len(self.index)
        arrays = []
        for name in ("p10", "p50", "p90"):
            a = np.array(getattr(self, name), dtype=np.float64)
            if a.shape != (n,):
                raise ValueError(f"{name} has shape {a.shape}, index has {n} steps")
            if not np.isfinite(a).all():
                raise ValueError(f"{name} has non-finite values")
            a.setflags(write=False)
            object.__setattr__(self, name, a)
            arrays.append(a)
        if (arrays[0] > arrays[1] + 1e-9).any() or (arrays[1] > arrays[2] + 1e-9).any():
            raise ValueError("quantiles not ordered: need p10 <= p50 <= p90")
        step = self._step_s
        if n >= 2:
            diffs = np.diff(self.index.as_unit("ns").asi8)
            if (diffs != diffs[0]).any() or diffs[0] <= 0:
                raise ValueError("index must be regular and increasing")
            step = int(diffs[0] // 1_000_000_000)
        elif self.index.freq is not None:
            step = int(pd.Timedelta(self.index.freq).total_seconds())
        if step <= 0:
            raise ValueError("a one-step forecast needs an index with freq")
        object.__setattr__(self, "_step_s", step)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def step_s(self) -> int:
        """Length of one step, seconds."""
        return self._step_s

    @property
    def origin(self) -> datetime:
        """First step start (aware UTC)."""
        first: datetime = self.index[0].to_pydatetime()
        return first

    def series(self, quantile: str = "p50") -> pd.Series:
        """One quantile as a Series over the index."""
        return pd.Series(getattr(self, quantile), index=self.index, name=f"{self.model}_{quantile}")


@dataclass(frozen=True)
class ForecastOptions:
    """Options of `forecast`. Durations in seconds, windows in days.

    - `horizon_s`, `step_s`: the output grid, ``horizon_s // step_s`` steps from the origin.
    - `training_days`: history window of seasonal_naive, profile and prophet.
    - `lear_training_days`: calibration window of both lear members and of mlp (longer: each
      lear member estimates 103 coefficients per hour of the day; Lago et al. 2021 use 56 to
      1456 days; 1092 chosen on 2022, see `domain.forecasting.lear`). Shorter histories are
      used as they are.
    - `validation_days`: the last days before the origin on which every model is scored
      day-ahead (fitted on the history before them) for the ensemble weights and the P10/P90
      residual quantiles; 0 switches validation off (equal weights, in-sample residuals).
    - `prophet`: False skips Prophet (fast path). `models`: which of `MODELS` to run (None:
      lear, gbm and prophet for price, profile, lear and prophet for load and pv; mlp only
      when named; seasonal_naive always runs). gbm uses a window of min(728,
      `lear_training_days`) days.
    - `min_history_days`: below this many days with data only seasonal_naive is produced.
    - `timezone`: the local time of day and weekday used by the naive rule, the weekday
      dummies and Prophet's seasonalities (a market's or site's local time).
    - `holidays`: the country (ISO 3166 code of the `holidays` package, e.g. "AT") whose public
      holidays count as Sundays for lear; None: none. (Prophet's holiday option is not used:
      it scored 0.690 against 0.684 on 2022, see `domain.forecasting.prophet_model`.)
    - `nonnegative`: clip every quantile at 0 (None: True for pv only).
    - `ensemble`: how "ensemble" combines the models (`ENSEMBLE_RULES`): "mean", the plain
      mean of the fitted members (the naive left out; "lear" counts as its two LEARs), or
      "inverse_mae", weights 1 / validation MAE among the models within 1.1 times the best
      (the earlier rule; see `domain.forecasting.pipeline`).
    """

    horizon_s: int = 86400
    step_s: int = 900
    training_days: int = 56
    prophet: bool = True
    min_history_days: int = 14
    lear_training_days: int = 1092
    validation_days: int = 28
    models: tuple[str, ...] | None = None
    timezone: str = "Europe/Vienna"
    holidays: str | None = "AT"
    nonnegative: bool | None = None
    ensemble: str = "mean"

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.horizon_s < self.step_s:
            raise ValueError("need 0 < step_s <= horizon_s")
        if self.training_days < 1 or self.lear_training_days < 1 or self.validation_days < 0:
            raise ValueError("windows must be positive")
        if self.ensemble not in ENSEMBLE_RULES:
            raise ValueError(f"unknown ensemble rule {self.ensemble!r}; known: {ENSEMBLE_RULES}")
        unknown = set(self.models or ()) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown models {sorted(unknown)}; known: {MODELS}")


    @property
    def history_days(self) -> int:
        """Days of history `forecast` can use (pass at least this many for full quality)."""
        models = set(MODELS if self.models is None else self.models)
        lear = self.lear_training_days if models & {"lear", "gbm", "mlp"} else 0
        return max(self.training_days, lear) + self.validation_days + 8


def as_utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """An aware datetime as a UTC Timestamp; naive ones are refused."""
    t = pd.Timestamp(ts)
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: pass an aware UTC datetime")
    return t.tz_convert(UTC)
