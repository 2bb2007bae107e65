"""Price CSV reader on the shipped AT file, DST local days, and replay pacing (fake sleep)."""

from __future__ import annotations

import math
import statistics
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from gateways.market_data.price_file import (
    expected_periods,
    local_day_periods,
    read_price_csv,
    replay,
)
from schemas.market import PriceTickReceived

CSV = Path(__file__).resolve().parents[2] / "data" / "at_hourly_2015_2023.csv"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def all_ticks() -> list[PriceTickReceived]:
    return list(read_price_csv(CSV))


def test_whole_file(all_ticks: list[PriceTickReceived]) -> None:
    # local days 2020-01-01 .. 2023-12-31 (35,064 h) minus four missing local days
    assert len(all_ticks) == 35_064 - 4 * 24
    first, last = all_ticks[0], all_ticks[-1]
    assert (first.delivery_start, first.price_eur_mwh) == (utc(2019, 12, 31, 23), 41.88)
    assert (last.delivery_start, last.price_eur_mwh) == (utc(2023, 12, 31, 22), 9.35)
    assert {(t.market, t.bidding_zone, t.resolution, t.data_source) for t in all_ticks} == {
        ("EPEX_AT_DAY_AHEAD_60MIN", "AT", "PT60M", "file")
    }
    assert all(t.delivery_end - t.delivery_start == timedelta(hours=1) for t in all_ticks[:100])
    assert all(a.delivery_start < b.delivery_start for a, b in pairwise(all_ticks))
    assert any(t.price_eur_mwh < 0 for t in all_ticks)


def test_2022_price_crisis(all_ticks: list[PriceTickReceived]) -> None:
    year = [t.price_eur_mwh for t in all_ticks if utc(2021, 12, 31, 23) <= t.delivery_start
            < utc(2022, 12, 31, 23)]  # fmt: skip
    assert len(year) == 8760 - 2 * 24
    assert statistics.mean(year) == pytest.approx(261, abs=1)


def test_window_filter_and_autumn_duplicate_hour() -> None:
    day = list(read_price_csv(CSV, start=utc(2023, 1, 14, 23), end=utc(2023, 1, 15, 23)))
    assert len(day) == 24
    assert (day[0].price_eur_mwh, day[1].price_eur_mwh, day[-1].price_eur_mwh) == (
        21.63,
        27.89,
        66.33,
    )
    autumn = list(read_price_csv(CSV, start=utc(2023, 10, 29, 0), end=utc(2023, 10, 29, 2)))
    assert [t.price_eur_mwh for t in autumn] == [6.26, 6.26]  # both local 02:00 hours


def test_dst_days_have_23_and_25_hourly_periods() -> None:
    spring = local_day_periods(read_price_csv(CSV, start=utc(2023, 3, 24), end=utc(2023, 3, 28)))
    assert spring[date(2023, 3, 25)] == 24
    assert spring[date(2023, 3, 26)] == 23
    assert spring[date(2023, 3, 27)] == 24
    autumn = local_day_periods(
        read_price_csv(CSV, start=utc(2023, 10, 27), end=utc(2023, 10, 31)), tz="Europe/Vienna"
    )
    assert autumn[date(2023, 10, 28)] == 24
    assert autumn[date(2023, 10, 29)] == 25
    assert autumn[date(2023, 10, 30)] == 24


def test_every_local_day_is_complete_except_the_known_gaps(
    all_ticks: list[PriceTickReceived],
) -> None:
    counts = local_day_periods(all_ticks)
    assert all(counts[day] == expected_periods(day) for day in counts)
    days = {date(2020, 1, 1) + timedelta(days=i) for i in range(1461)}
    assert sorted(days - counts.keys()) == [
        date(2020, 9, 26), date(2021, 7, 31), date(2022, 9, 3), date(2022, 11, 30)
    ]  # fmt: skip
    assert sorted(d for d, n in counts.items() if n != 24 and d.year == 2023) == [
        date(2023, 3, 26),
        date(2023, 10, 29),
    ]


def test_expected_periods() -> None:
    assert expected_periods(date(2023, 3, 26)) == 23
    assert expected_periods(date(2023, 10, 29)) == 25
    assert expected_periods(date(2023, 10, 29), resolution="PT15M") == 100
    assert expected_periods(date(2023, 3, 26), "Europe/Vienna", "PT15M") == 92
    assert expected_periods(date(2023, 6, 1)) == 24
    assert expected_periods(date(2023, 3, 26), tz="UTC") == 24


def test_reader_skips_empty_prices_and_reports_bad_rows(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "timestamp_utc,price_eur_mwh\n2024-01-01T00:00Z,\n2024-01-01T01:00Z,-5.5\n"
        "2024-01-01T02:00,7\n"
    )
    ticks = list(read_price_csv(good, bidding_zone="de_lu"))
    assert [(t.delivery_start, t.price_eur_mwh) for t in ticks] == [
        (utc(2024, 1, 1, 1), -5.5),
        (utc(2024, 1, 1, 2), 7.0),
    ]
    assert (ticks[0].market, ticks[0].bidding_zone) == ("EPEX_DE_LU_DAY_AHEAD_60MIN", "DE-LU")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_utc,price_eur_mwh\n2024-01-01T00:00Z,1\n2024-01-01T01:00Z,abc\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        list(read_price_csv(bad))
    other = tmp_path / "other.csv"
    other.write_text("time,price\n")
    with pytest.raises(ValueError, match="missing column"):
        list(read_price_csv(other))
    with pytest.raises(ValueError, match="naive"):
        list(read_price_csv(good, start=datetime(2024, 1, 1)))


# -- replay ----------------------------------------------------------------------------------


def _ticks(hours: list[int], resolution: str = "PT60M") -> list[PriceTickReceived]:
    length = timedelta(hours=1) if resolution == "PT60M" else timedelta(minutes=15)
    market = "EPEX_AT_DAY_AHEAD_60MIN" if resolution == "PT60M" else "EPEX_AT_DAY_AHEAD_15MIN"
    return [
        PriceTickReceived(
            market=market,
            bidding_zone="AT",
            delivery_start=utc(2023, 1, 1) + timedelta(hours=h),
            delivery_end=utc(2023, 1, 1) + timedelta(hours=h) + length,
            resolution=resolution,
            price_eur_mwh=float(h),
            data_source="file",
        )
        for h in hours
    ]


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def _collect(it: AsyncIterator[PriceTickReceived]) -> list[PriceTickReceived]:
    return [tick async for tick in it]


async def test_replay_paces_by_event_time() -> None:
    ticks, sleep = _ticks([0, 1, 2, 3, 5]), FakeSleep()
    assert await _collect(replay(ticks, speed=3600, sleep=sleep)) == ticks
    assert sleep.delays == [1.0, 1.0, 1.0, 2.0]  # first tick at once; a gap of 2 h waits 2 s
    sleep = FakeSleep()
    await _collect(replay(ticks, speed=7200, sleep=sleep))
    assert sleep.delays == [0.5, 0.5, 0.5, 1.0]


async def test_replay_same_period_ticks_are_not_delayed() -> None:
    ticks = sorted(_ticks([0, 1]) + _ticks([0, 1], "PT15M"), key=lambda t: t.delivery_start)
    sleep = FakeSleep()
    assert len(await _collect(replay(ticks, speed=3600, sleep=sleep))) == 4
    assert sleep.delays == [1.0]


async def test_replay_backfill_is_immediate_then_paced() -> None:
    ticks, sleep = _ticks(list(range(6))), FakeSleep()
    until = utc(2023, 1, 1, 3)
    assert await _collect(replay(ticks, speed=3600, sleep=sleep, backfill_until=until)) == ticks
    assert sleep.delays == [1.0, 1.0]  # hours 0-2 at once, hour 3 is "now", then 4 and 5
    sleep = FakeSleep()
    half_past = utc(2023, 1, 1, 2, 30)
    await _collect(replay(ticks, speed=3600, sleep=sleep, backfill_until=half_past))
    assert sleep.delays == [0.5, 1.0, 1.0]
    sleep = FakeSleep()
    await _collect(replay(ticks, speed=3600, sleep=sleep, backfill_until=utc(2030, 1, 1)))
    assert sleep.delays == []


@pytest.mark.parametrize("speed", [0.0, -1.0, math.inf])
async def test_replay_as_fast_as_possible(speed: float) -> None:
    ticks, sleep = _ticks([0, 1, 5]), FakeSleep()
    assert await _collect(replay(ticks, speed=speed, sleep=sleep)) == ticks
    assert sleep.delays == []


async def test_replay_accepts_async_input_and_rejects_nan() -> None:
    async def source() -> AsyncIterator[PriceTickReceived]:
        for tick in _ticks([0, 2]):
            yield tick

    sleep = FakeSleep()
    assert len(await _collect(replay(source(), speed=3600, sleep=sleep))) == 2
    assert sleep.delays == [2.0]
    with pytest.raises(ValueError, match="NaN"):
        await _collect(replay(_ticks([0]), speed=math.nan))
    with pytest.raises(ValueError, match="naive"):
        await _collect(replay(_ticks([0]), speed=1, backfill_until=datetime(2023, 1, 1)))


async def test_replay_with_real_sleep_and_file_ticks() -> None:
    ticks = list(read_price_csv(CSV, start=utc(2023, 1, 1), end=utc(2023, 1, 1, 3)))
    out = await _collect(replay(ticks, speed=3600 * 100))  # 10 ms per market hour
    assert out == ticks
