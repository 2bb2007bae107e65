"""The hourly grid the models work on, local-time helpers and the expansion to output steps.

Hours are integers: hours since 1970-01-01T00:00Z, hour-beginning. Local time (weekday, hour of
day, UTC offset) comes from the IANA zone passed in; "the same local hour k days earlier" is
computed in wall-clock time, so across a DST change it is 23 or 25 hours away, not 24.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

HOUR_S = 3600
HOUR_NS = HOUR_S * 1_000_000_000


@dataclass(frozen=True)
class Hourly:
    """Values on a regular hourly UTC grid: ``values[i]`` is hour ``start + i``; NaN = missing."""

    start: int
    values: np.ndarray

    @property
    def end(self) -> int:
        """First hour after the data (exclusive)."""
        return self.start + len(self.values)

    def at(self, hours: np.ndarray) -> np.ndarray:
        """Values at `hours`; NaN outside the grid or where missing."""
        hours = np.asarray(hours, dtype=np.int64)
        i = hours - self.start
        ok = (i >= 0) & (i < len(self.values))
        out = np.full(hours.shape, np.nan)
        out[ok] = self.values[i[ok]]
        return out

    def until(self, hour: int) -> Hourly:
        """The hours before `hour`."""
        return Hourly(self.start, self.values[: max(0, hour - self.start)])

    def since(self, hour: int) -> Hourly:
        """The hours from `hour` on."""
        k = max(0, hour - self.start)
        return Hourly(self.start + k, self.values[k:])

    def extended(self, start: int, values: np.ndarray) -> Hourly:
        """This series continued by `values` from hour `start` (>= end; the gap stays NaN)."""
        if start < self.end:
            raise ValueError("extension overlaps the series")
        gap = np.full(start - self.end, np.nan)
        return Hourly(self.start, np.concatenate([self.values, gap, values]))

    @property
    def n_valid(self) -> int:
        return int(np.isfinite(self.values).sum())

    def valid_bounds(self) -> tuple[int, int] | None:
        """First and last hour with a value, or None."""
        ok = np.flatnonzero(np.isfinite(self.values))
        if len(ok) == 0:
            return None
        return self.start + int(ok[0]), self.start + int(ok[-1])


def hour_of(ts: pd.Timestamp) -> int:
    """The hour (since the epoch) containing `ts`."""
    return int(ts.as_unit("ns").value // HOUR_NS)


def timestamps(hours: np.ndarray | range) -> pd.DatetimeIndex:
    """Hours as a tz-aware UTC DatetimeIndex."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(hours, dtype=np.int64) * HOUR_S,
                                           unit="s", utc=True))


def to_hourly(history: pd.Series, before_hour: int) -> Hourly:
    """Hourly means of the finite values of `history` in the hours before `before_hour`.

    `history` is indexed by tz-aware timestamps; a value belongs to the hour its timestamp falls
    in (hour-beginning). The result runs from the first hour with a value to ``before_hour``.
    """
    idx = history.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise ValueError("history must be indexed by tz-aware timestamps")
    values = pd.to_numeric(history, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    hours = idx.as_unit("ns").asi8 // HOUR_NS
    keep = np.isfinite(values) & (hours < before_hour)
    values, hours = values[keep], hours[keep]
    if len(values) == 0:
        return Hourly(before_hour, np.empty(0))
    first = int(hours.min())
    pos = hours - first
    n = before_hour - first
    sums = np.bincount(pos, weights=values, minlength=n)
    counts = np.bincount(pos, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Hourly(first, mean)


@dataclass(frozen=True)
class LocalTime:
    """Local weekday (Mon = 0), hour of day and UTC offset (hours) of a set of hours."""

    weekday: np.ndarray
    hour: np.ndarray
    offset_h: np.ndarray


def local_time(hours: np.ndarray, tz: str) -> LocalTime:
    idx = timestamps(hours)
    loc = idx.tz_convert(tz)
    offset = (loc.tz_localize(None) - idx.tz_localize(None)).total_seconds().to_numpy() / HOUR_S
    return LocalTime(loc.day_of_week.to_numpy(), loc.hour.to_numpy(), offset)


def same_local_hour(hours: np.ndarray, days: np.ndarray | int, tz: str) -> np.ndarray:
    """The hours at the same local wall-clock time `days` days before each of `hours`.

    `days` is a scalar, an array like `hours` or a (k, n) array (k lags at once, result (k, n)).
    Across a DST change the distance is 23 or 25 hours per day; a wall-clock time that does not
    exist on the earlier day (spring) maps to the hour after it.
    """
    hours = np.asarray(hours, dtype=np.int64)
    earlier = hours - 24 * np.asarray(days, dtype=np.int64)
    flat = np.broadcast_to(earlier, np.broadcast_shapes(earlier.shape, hours.shape))
    off_then = local_time(flat.ravel(), tz).offset_h.reshape(flat.shape)
    shift = local_time(hours, tz).offset_h - off_then
    return np.asarray(flat + np.rint(shift).astype(np.int64))


def local_hours(hours: np.ndarray, tz: str) -> np.ndarray:
    """Local wall-clock hour numbers: hours since 1970-01-01T00:00 on the local wall clock.

    Consecutive UTC hours map to consecutive local numbers except at DST changes: in spring
    one number is skipped (02:00 does not exist), in autumn one repeats (02:00 twice)."""
    hours = np.asarray(hours, dtype=np.int64)
    return np.asarray(hours + np.rint(local_time(hours, tz).offset_h).astype(np.int64))


def local_weekday(local: np.ndarray) -> np.ndarray:
    """Weekday (Mon = 0) of local hour numbers (1970-01-01 was a Thursday)."""
    return np.asarray((np.asarray(local) // 24 + 3) % 7)


def to_local_grid(series: Hourly, tz: str) -> Hourly:
    """`series` on the local wall-clock grid (`Hourly.start` is then a local hour number): every
    local day has 24 hours. The repeated autumn hour gets the mean of its two UTC hours; the
    missing spring hour the mean of its neighbours (as day-ahead data sets in local time do,
    e.g. Lago et al. 2021). Missing data stays missing."""
    if len(series.values) == 0:
        return series
    local = local_hours(np.arange(series.start, series.end), tz)
    first = int(local[0])
    pos = local - first
    n = int(pos[-1]) + 1
    ok = np.isfinite(series.values)
    sums = np.bincount(pos[ok], weights=series.values[ok], minlength=n)
    counts = np.bincount(pos[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    for gap in np.flatnonzero(np.bincount(pos, minlength=n) == 0):  # spring-forward hours
        near = values[max(gap - 1, 0): gap + 2]
        near = near[np.isfinite(near)]
        values[gap] = float(near.mean()) if len(near) else np.nan
    return Hourly(first, values)


def expand(values: np.ndarray, first_hour: int, origin_ns: int, n_steps: int,
           step_s: int) -> np.ndarray:
    """Hourly `values` (hour ``first_hour + i``) on the output grid: each step gets the mean of
    the hours it overlaps, weighted by the overlap (a 15-min step holds its hour's value)."""
    step_ns = step_s * 1_000_000_000
    out = np.empty(n_steps)
    for k in range(n_steps):
        a = origin_ns + k * step_ns
        b = a + step_ns
        h0, h1 = a // HOUR_NS, (b - 1) // HOUR_NS
        hs = np.arange(h0, h1 + 1)
        w = np.minimum(b, (hs + 1) * HOUR_NS) - np.maximum(a, hs * HOUR_NS)
        out[k] = float(np.dot(values[hs - first_hour], w) / w.sum())
    return out
