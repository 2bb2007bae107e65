"""Issue 5 additions: public holidays, LEAR's normalisations and member average, Prophet's
lagged regressors (known over the day-ahead horizon, no look-ahead, deterministic)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from domain.forecasting.holidays import holiday_days, holiday_mask
from domain.forecasting.hourly import Hourly, hour_of, local_hours, to_hourly, to_local_grid
from domain.forecasting.lear import Lear, LearAverage, Scaler, _block_scale, _dummies
from domain.forecasting.pipeline import PROPHET_EXTRA, lear_members
from domain.forecasting.prophet_model import ProphetModel, _frame, _regressors
from infra.settings import PROJECT_ROOT

VIENNA = "Europe/Vienna"
EPOCH = date(1970, 1, 1).toordinal()


@pytest.fixture(autouse=True, scope="module")
def _quiet() -> Iterator[None]:
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def prices() -> Hourly:
    frame = pd.read_csv(PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv",
                        usecols=["timestamp_utc", "price_eur_mwh"])
    series = pd.Series(frame["price_eur_mwh"].to_numpy(dtype=float),
                       index=pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True)))
    return to_hourly(series.dropna(), hour_of(pd.Timestamp("2024-01-01", tz="UTC")))


def local_midnight(day: str) -> int:
    """The UTC hour number of local midnight in Vienna."""
    return hour_of(pd.Timestamp(day).tz_localize(VIENNA).tz_convert("UTC"))


def day_number(d: date) -> int:
    return d.toordinal() - EPOCH


# --- holidays -------------------------------------------------------------------------------

def test_austrian_public_holidays() -> None:
    days = set(holiday_days("AT", range(2023, 2024)).tolist())
    assert len(days) == 13
    for d in (date(2023, 1, 6), date(2023, 4, 10), date(2023, 10, 26), date(2023, 12, 26)):
        assert day_number(d) in days  # Epiphany, Easter Monday, National Day, St Stephen's
    assert day_number(date(2023, 1, 5)) not in days
    assert day_number(date(2023, 10, 31)) not in days  # Reformation Day: Germany, not AT


def test_holiday_mask_covers_the_whole_local_day() -> None:
    start = local_midnight("2023-01-05")
    local = local_hours(np.arange(start, start + 72), VIENNA)  # 5, 6 (Epiphany), 7 January
    mask = holiday_mask(local, "AT")
    assert not mask[:24].any() and mask[24:48].all() and not mask[48:].any()


def test_lear_treats_a_holiday_as_a_sunday() -> None:
    epiphany = 24 * day_number(date(2023, 1, 6))  # a Friday, local hour numbers
    sunday = 24 * day_number(date(2023, 1, 8))
    hours = epiphany + np.arange(24)
    np.testing.assert_array_equal(_dummies(hours, "AT"), _dummies(sunday + np.arange(24), "AT"))
    assert _dummies(hours, None)[:, 4].all()  # without holidays: Friday
    assert (_dummies(hours, "AT").argmax(axis=1) == 6).all()


def test_prophet_daily_profile_counts_a_holiday_as_weekend() -> None:
    local = 24 * day_number(date(2023, 1, 6)) + np.arange(24)
    assert _frame(local, "AT")["weekend"].all()
    assert not _frame(local, None)["weekend"].any()


# --- LEAR -----------------------------------------------------------------------------------

def test_default_lear_has_a_level_and_a_rolling_normalised_member() -> None:
    assert lear_members(1092) == ((1092, 1, 0), (1092, 0, 7))


@pytest.mark.parametrize(("level_days", "norm_days"), [(1, 0), (0, 7), (0, 0)])
def test_lear_is_equivariant_to_shift_and_scale(prices: Hourly, level_days: int,
                                                norm_days: int) -> None:
    """Median/MAD (or rolling median/MAD) scaling: prices a + b y forecast as a + b f."""
    start = local_midnight("2023-05-15")
    train = prices.until(start).since(start - 24 * 140)
    model = Lear(VIENNA, 140, holidays="AT", level_days=level_days, norm_days=norm_days)
    base = model.fit(train).predict(train, start, 48)
    moved = Hourly(train.start, 40.0 + 2.5 * train.values)
    again = model.fit(moved).predict(moved, start, 48)
    np.testing.assert_allclose(again, 40.0 + 2.5 * base, rtol=1e-7, atol=1e-6)


def test_lear_average_is_the_mean_of_its_members_and_deterministic(prices: Hourly) -> None:
    start = local_midnight("2023-09-04")
    train = prices.until(start).since(start - 24 * 200)
    avg = LearAverage(VIENNA, lear_members(200), holidays="AT")
    out = avg.fit(train).predict(train, start, 24)
    members = [Lear(VIENNA, w, holidays="AT", level_days=lv, norm_days=nd)
               .fit(train).predict(train, start, 24) for w, lv, nd in lear_members(200)]
    np.testing.assert_allclose(out, np.mean(members, axis=0))
    assert not np.allclose(members[0], members[1])  # the normalisations differ
    np.testing.assert_array_equal(avg.fit(train).predict(train, start, 24), out)


def test_lear_sees_nothing_after_the_origin(prices: Hourly) -> None:
    start = local_midnight("2023-03-20")
    fit = LearAverage(VIENNA, lear_members(150), holidays="AT").fit(
        prices.until(start).since(start - 24 * 150))
    changed = Hourly(prices.start, prices.values.copy())
    changed.values[start - changed.start:] = 5000.0
    np.testing.assert_array_equal(fit.predict(prices, start, 24),
                                  fit.predict(changed, start, 24))


def test_block_scale_uses_only_the_days_before_each_day() -> None:
    rng = np.random.default_rng(7)
    raw = Hourly(0, rng.normal(100, 30, 24 * 30))
    starts = np.array([24 * 10, 24 * 20])
    scaler = Scaler(90.0, 25.0)
    level = _block_scale(raw, starts, scaler, level_days=1, norm_days=0)
    for i, s in enumerate(starts):
        d1 = raw.values[s - 24: s]
        assert level.level[i] == pytest.approx(np.mean(np.arcsinh((d1 - 90.0) / 25.0)))
    assert (level.median == 90.0).all() and (level.scale == 25.0).all()
    rolling = _block_scale(raw, starts, scaler, level_days=0, norm_days=7)
    for i, s in enumerate(starts):
        week = raw.values[s - 24 * 7: s]
        assert rolling.median[i] == pytest.approx(np.median(week))
        mad = 1.4826 * np.median(np.abs(week - np.median(week)))
        assert rolling.scale[i] == pytest.approx(mad)
    assert (rolling.level == 0).all()
    changed = Hourly(0, raw.values.copy())
    changed.values[24 * 20:] = 1e6  # the day itself and later: no influence
    again = _block_scale(changed, starts, scaler, level_days=0, norm_days=7)
    np.testing.assert_array_equal(again.median, rolling.median)


# --- Prophet regressors ---------------------------------------------------------------------

def test_prophet_regressors_are_known_over_the_day_ahead_horizon(prices: Hourly) -> None:
    start = local_midnight("2023-06-12")  # a Monday
    grid = to_local_grid(prices.until(start), VIENNA)  # nothing of the target day
    day = grid.end + np.arange(24)  # the target day, local hour numbers
    frame = _regressors(_frame(day), grid, day, (24, 168), level_phase=int(grid.end % 24),
                        extra=PROPHET_EXTRA)
    cols = ["lag24", "lag168", "level", "llast", "lnaive"]
    assert frame[cols].notna().all().all()
    last_day = grid.values[-24:]
    assert (frame["llast"] == last_day[-1]).all()  # 23:00 of the day before, every hour
    assert frame["level"].iloc[0] == pytest.approx(last_day.mean())
    np.testing.assert_array_equal(frame["lnaive"], grid.at(day - 168))  # Monday: a week before
    tuesday = day + 24
    f2 = _regressors(_frame(tuesday), grid.extended(grid.end, np.zeros(24)), tuesday, (24,),
                     level_phase=int(grid.end % 24), extra=("naive",))
    np.testing.assert_array_equal(f2["lnaive"], np.zeros(24))  # Tuesday: the day before


def test_prophet_with_regressors_no_look_ahead_and_deterministic(prices: Hourly) -> None:
    start = local_midnight("2023-06-12")
    train = prices.until(start).since(start - 24 * 56)
    model = ProphetModel(VIENNA, extra=PROPHET_EXTRA)
    fit = model.fit(train)
    out = fit.predict(prices, start, 48)
    changed = Hourly(prices.start, prices.values.copy())
    changed.values[start - changed.start:] = -500.0
    np.testing.assert_array_equal(fit.predict(changed, start, 48), out)
    np.testing.assert_array_equal(model.fit(train).predict(prices, start, 48), out)
    assert np.isfinite(out).all() and out.std() > 1.0
    # day-ahead in one call equals forecasting the first day from the history before it
    np.testing.assert_allclose(fit.predict_day_ahead(prices.until(start + 24), start, 24),
                               out[:24])


def test_prophet_holidays_frame_spans_the_forecast_year() -> None:
    hours = np.array([24 * day_number(date(2023, 11, 1)), 24 * day_number(date(2023, 12, 31))])
    frame = ProphetModel(VIENNA, holidays="AT")._holidays(hours)
    assert frame is not None
    assert pd.Timestamp("2024-01-01") in set(frame["ds"])  # the next year's too
    assert ProphetModel(VIENNA)._holidays(hours) is None
