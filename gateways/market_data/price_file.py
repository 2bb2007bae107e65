"""Price ticks from the shipped CSV, replayed at market speed, plus local-day (DST) helpers.

File format (``data/at_hourly_2015_2023.csv``, see ``data/README.md``): header
``timestamp_utc,price_eur_mwh,...``; `timestamp_utc` is the hour-beginning UTC time in ISO 8601
(``2023-01-15T00:00Z``), `price_eur_mwh` the EPEX SPOT day-ahead price for AT in EUR/MWh, empty
where unknown (before 2020 and on four missing days). Other columns are ignored.

Source of the data: EPEX SPOT / SDAC day-ahead results as republished by RTE eco2mix (via the
MIT-licensed HewlettPackard/green-dcc repository), for development and testing only.
"""

from __future__ import annotations

import asyncio
import csv
import math
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from schemas.market import RESOLUTION_SECONDS, PriceTickReceived, day_ahead_market

DATA_SOURCE = "file"
RESOLUTION = "PT60M"
_HOUR = timedelta(hours=1)

Sleep = Callable[[float], Awaitable[object]]
"""An ``asyncio.sleep``-like coroutine function taking seconds of wall time."""


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} {value.isoformat()} is naive; pass an aware UTC datetime")
    return value.astimezone(UTC)


def read_price_csv(
    path: str | Path,
    *,
    bidding_zone: str = "AT",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Iterator[PriceTickReceived]:
    """Hourly day-ahead ticks from a price CSV, in file order (the shipped file is sorted).

    Yields one `PriceTickReceived` per row with a price and ``start <= timestamp_utc < end``
    (bounds aware, optional): market ``day_ahead_market(bidding_zone, "PT60M")`` (e.g.
    ``EPEX_AT_DAY_AHEAD_60MIN``), delivery ``[timestamp_utc, +1 h)``, `price_eur_mwh` in EUR/MWh,
    `data_source` ``"file"``. Rows with an empty price are skipped. The file is read lazily.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naive `start`/`end`, missing `timestamp_utc`/`price_eur_mwh` columns, or a row
            whose timestamp or price does not parse (the message names the line).
    """
    lower = _utc(start, "start") if start is not None else None
    upper = _utc(end, "end") if end is not None else None
    zone = bidding_zone.strip().upper().replace("_", "-")
    market = day_ahead_market(zone, RESOLUTION)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"timestamp_utc", "price_eur_mwh"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            raw_price = (row["price_eur_mwh"] or "").strip()
            if not raw_price:
                continue
            try:
                stamp = datetime.fromisoformat(row["timestamp_utc"].strip())
                price = float(raw_price)
            except (AttributeError, ValueError) as exc:
                raise ValueError(f"{path}:{reader.line_num}: {exc}") from None
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
            if (lower is not None and stamp < lower) or (upper is not None and stamp >= upper):
                continue
            yield PriceTickReceived(
                market=market,
                bidding_zone=zone,
                delivery_start=stamp,
                delivery_end=stamp + _HOUR,
                resolution=RESOLUTION,
                price_eur_mwh=price,
                data_source=DATA_SOURCE,
            )


async def _aiter(
    ticks: Iterable[PriceTickReceived] | AsyncIterable[PriceTickReceived],
) -> AsyncIterator[PriceTickReceived]:
    if isinstance(ticks, AsyncIterable):
        async for tick in ticks:
            yield tick
    else:
        for tick in ticks:
            yield tick


async def replay(
    ticks: Iterable[PriceTickReceived] | AsyncIterable[PriceTickReceived],
    *,
    speed: float,
    sleep: Sleep = asyncio.sleep,
    backfill_until: datetime | None = None,
) -> AsyncIterator[PriceTickReceived]:
    """Yield `ticks` paced by event time (their `delivery_start`).

    `speed` is market seconds per wall second: 3600 plays one market hour per wall second;
    ``speed <= 0`` or ``inf`` yields as fast as possible (`sleep` is never called). Ticks with
    ``delivery_start < backfill_until`` are yielded at once (history). The market clock starts
    at `backfill_until`, or at the first tick's delivery_start when there is no backfill, so
    the first live tick waits ``(delivery_start - clock) / speed`` seconds, and each later one
    waits for its gap to the latest delivery_start seen. Ticks with an equal or earlier
    delivery_start (several markets per period, unsorted input) are not delayed. Sleeps are
    relative: the consumer's processing time adds to the pacing. Input may be sync or async.

    Raises:
        ValueError: `speed` is NaN or `backfill_until` is naive.
    """
    if math.isnan(speed):
        raise ValueError("speed is NaN")
    paced = 0 < speed < math.inf
    backfill = _utc(backfill_until, "backfill_until") if backfill_until is not None else None
    clock = backfill
    async for tick in _aiter(ticks):
        if backfill is not None and tick.delivery_start < backfill:
            yield tick
            continue
        if clock is not None and tick.delivery_start > clock:
            if paced:
                await sleep((tick.delivery_start - clock).total_seconds() / speed)
            clock = tick.delivery_start
        elif clock is None:
            clock = tick.delivery_start
        yield tick


def local_day_periods(
    ticks: Iterable[PriceTickReceived], tz: str | ZoneInfo = "Europe/Vienna"
) -> dict[date, int]:
    """Number of ticks per local delivery day (date of `delivery_start` in `tz`), date-sorted.

    With one tick per hour, a complete day has 24 periods, 23 on the spring DST day and 25 on
    the autumn one (Europe/Vienna 2023: 2023-03-26 and 2023-10-29); compare with
    `expected_periods` to find gaps. Count one market at a time.
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    counts = Counter(t.delivery_start.astimezone(zone).date() for t in ticks)
    return dict(sorted(counts.items()))


def expected_periods(
    day: date, tz: str | ZoneInfo = "Europe/Vienna", resolution: str = "PT60M"
) -> int:
    """Delivery periods of length `resolution` in local day `day` of `tz` (24 h +- DST hour).

    E.g. 23 for 2023-03-26 and 25 for 2023-10-29 in Europe/Vienna at PT60M (92/100 at PT15M).

    Raises:
        KeyError: unknown resolution. zoneinfo.ZoneInfoNotFoundError: unknown time zone.
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    begin = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    finish = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return int((finish - begin).total_seconds()) // RESOLUTION_SECONDS[resolution]
