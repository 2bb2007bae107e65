"""Public holidays as local day numbers (pure: computed from the calendar rules of the
`holidays` package, no I/O).

A holiday's prices and load look like a Sunday's (low demand), so the models treat it as one:
LEAR's weekday dummy says Sunday (as in Lago et al. 2021's LEAR, where the dummies mark the day
type), Prophet gets the days as `holidays`."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=64)
def _days(country: str, year: int) -> frozenset[int]:
    import holidays

    return frozenset(d.toordinal() - EPOCH_ORDINAL
                     for d in holidays.country_holidays(country, years=year))


def holiday_days(country: str, years: range) -> np.ndarray:
    """Sorted local day numbers (days since 1970-01-01) of the public holidays of `country`
    (ISO 3166 code, e.g. "AT") in `years`."""
    out: set[int] = set()
    for y in years:
        out |= _days(country, y)
    return np.asarray(sorted(out), dtype=np.int64)


def holiday_mask(local: np.ndarray, country: str) -> np.ndarray:
    """Whether each local hour number (`hourly.local_hours`) falls on a public holiday."""
    local = np.asarray(local, dtype=np.int64)
    if len(local) == 0:
        return np.zeros(0, dtype=bool)
    day = local // 24
    first = date.fromordinal(int(day.min()) + EPOCH_ORDINAL).year
    last = date.fromordinal(int(day.max()) + EPOCH_ORDINAL).year
    return np.isin(day, holiday_days(country, range(first, last + 1)))
