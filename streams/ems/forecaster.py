"""Wiring of the price forecaster (keyed by market), scheduled in event time.

Consumes ``market.price-ticks.v1`` (keyed by market) and ``system.clock.v1``. Ticks extend the
market's price history (the last ``ForecastOptions.history_days`` days, the longest window a
model uses plus the validation days; kept in the changelog by day);
when the clock reaches the market's next forecast time (every ``BESS_FORECAST_INTERVAL_S`` of
event time) `domain.forecasting.forecast` runs on the history before the origin, and the best
model's forecast is published as `ForecastPublished` for every site of ``ems.yaml`` that
trades on that market (keyed by site, so the dispatch processor of the site receives it).
Prices already published for periods after the origin (day-ahead results) replace the model's
values and are marked ``known``.

A batch that carries several clock ticks (catching up after a pause) forecasts once, at the
latest tick: intermediate forecasts would be stale before anyone read them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd

from domain.dispatch import SiteConfig
from domain.forecasting import Forecast, ForecastOptions, best, forecast
from infra.settings import Settings
from schemas.catalog import CLOCK, FORECASTS, PRICE_TICKS
from schemas.clock import ClockTicked
from schemas.ems import ForecastPoint, ForecastPublished
from schemas.envelope import new_envelope
from schemas.market import PriceTickReceived
from streams.ems.sites import read_sites
from streams.runtime import Emit, Output, Processor, Runtime

NAME = "forecaster"
SOURCE = "streams.forecaster"
ACCEPTED = (PriceTickReceived, ClockTicked)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_time(t: datetime, step_s: int) -> datetime:
    """`t` rounded down to a multiple of `step_s` seconds since the Unix epoch (UTC)."""
    seconds = int((t - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step_s)


class MarketHistory:
    """Prices of one market by delivery start, with the next forecast time."""

    def __init__(self) -> None:
        self.prices: dict[datetime, float] = {}
        self.next_due: datetime | None = None

    def series(self, before: datetime) -> pd.Series:
        starts = sorted(t for t in self.prices if t < before)
        return pd.Series([self.prices[t] for t in starts], index=pd.DatetimeIndex(starts),
                         dtype=float)

    def day_values(self, day: str) -> dict[str, float]:
        return {t.isoformat(): p for t, p in self.prices.items() if t.date().isoformat() == day}


def to_event(result: Forecast, *, site: str, market: str, issued_at: datetime,
             known: dict[datetime, float]) -> ForecastPublished:
    """A domain forecast as the event, published prices overlaid as ``known`` points."""
    points = []
    for i, start in enumerate(result.index):
        t = start.to_pydatetime()
        price = _known_price(known, t)
        if price is not None:
            points.append(ForecastPoint(start=t, p10=price, p50=price, p90=price, known=True))
        else:
            points.append(ForecastPoint(start=t, p10=float(result.p10[i]),
                                        p50=float(result.p50[i]), p90=float(result.p90[i])))
    return ForecastPublished(
        site=site, market=market, quantity="price", unit=result.unit, model=result.model,
        issued_at=issued_at, step_s=result.step_s, training_start=result.training_start,
        training_end=result.training_end, points=tuple(points))


def _known_price(known: dict[datetime, float], t: datetime) -> float | None:
    """The published price of the delivery period containing `t` (hourly or 15-minute)."""
    for step in (timedelta(0), timedelta(minutes=15), timedelta(minutes=30),
                 timedelta(minutes=45)):
        price = known.get(t - step)
        if price is not None:
            return price
    return None


class ForecastProcessor(Processor):
    name = NAME
    inputs = (PRICE_TICKS.name, CLOCK.name)
    partitions = PRICE_TICKS.partitions

    def __init__(self, sites: Sequence[SiteConfig], *, interval_s: int = 3600,
                 options: ForecastOptions | None = None) -> None:
        self.sites_by_market: dict[str, list[SiteConfig]] = defaultdict(list)
        for site in sites:
            self.sites_by_market[site.price_market].append(site)
        self.interval_s = interval_s
        self.options = options or ForecastOptions()
        self.keep = timedelta(days=self.options.history_days)
        self.markets: dict[int, dict[str, MarketHistory]] = {}
        self.clocks: dict[int, datetime] = {}  # the last event time of each partition

    def restore(self, partition: int, state: dict[bytes, bytes]) -> None:
        markets: dict[str, MarketHistory] = {}
        self.clocks.pop(partition, None)
        for key, value in state.items():
            kind, market, _day = key.decode().split("|", 2)
            if kind == "clock":
                self.clocks[partition] = datetime.fromisoformat(orjson.loads(value))
                continue
            history = markets.setdefault(market, MarketHistory())
            if kind == "price":
                for start, price in orjson.loads(value).items():
                    history.prices[datetime.fromisoformat(start)] = price
            elif kind == "due":
                history.next_due = datetime.fromisoformat(orjson.loads(value))
        self.markets[partition] = markets

    def revoke(self, partition: int) -> None:
        self.markets.pop(partition, None)
        self.clocks.pop(partition, None)

    def handle(self, partition: int, records: Sequence[Any], out: Output) -> None:
        markets = self.markets.setdefault(partition, {})
        dirty: set[tuple[str, str]] = set()
        clock: datetime | None = None
        for record in records:
            envelope = self.decode(record, out, ACCEPTED)
            if envelope is None:
                continue
            payload = envelope.payload
            if isinstance(payload, ClockTicked):
                clock = payload.at if clock is None else max(clock, payload.at)
                continue
            history = markets.setdefault(payload.market, MarketHistory())
            history.prices[payload.delivery_start] = payload.price_eur_mwh
            dirty.add((payload.market, payload.delivery_start.date().isoformat()))
        if clock is not None:
            self.clocks[partition] = clock
            out.state[b"clock||"] = orjson.dumps(clock.isoformat())
        # a market seen for the first time is forecast at the last event time even when its
        # ticks come after the clock (topics are consumed side by side, in no fixed order)
        at = self.clocks.get(partition)
        if at is not None:
            for market, history in markets.items():
                if history.next_due is None or (clock is not None and clock >= history.next_due):
                    self._forecast(market, history, at, out)
                    history.next_due = floor_time(at, self.interval_s) + timedelta(
                        seconds=self.interval_s)
                    out.state[f"due|{market}|".encode()] = orjson.dumps(
                        history.next_due.isoformat())
                if clock is not None:
                    self._evict(market, history, clock, out)
        for market, day in dirty:
            values = markets[market].day_values(day)
            out.state[f"price|{market}|{day}".encode()] = orjson.dumps(values) if values else None

    def _forecast(self, market: str, history: MarketHistory, clock: datetime,
                  out: Output) -> None:
        sites = self.sites_by_market.get(market)
        if not sites:
            return
        origin = floor_time(clock, self.options.step_s)
        series = history.series(origin)
        if series.empty:
            return
        result = best(forecast(series, quantity="price", unit="EUR/MWh", origin=origin,
                               options=self.options))
        known = {t: p for t, p in history.prices.items() if t >= origin - timedelta(hours=1)}
        for site in sites:
            event = to_event(result, site=site.site_id, market=market, issued_at=clock,
                             known=known)
            out.emits.append(Emit.envelope(FORECASTS.name, new_envelope(
                event, occurred_at=clock, source=SOURCE)))

    def _evict(self, market: str, history: MarketHistory, clock: datetime,
               out: Output) -> None:
        cutoff = clock - self.keep
        old = [t for t in history.prices if t < cutoff]
        days = {t.date().isoformat() for t in old}
        for t in old:
            del history.prices[t]
        for day in days:
            values = history.day_values(day)
            out.state[f"price|{market}|{day}".encode()] = orjson.dumps(values) if values else None


def create_runtime(settings: Settings) -> Runtime:
    options = ForecastOptions(training_days=settings.forecast_training_days,
                              prophet=settings.forecast_prophet)
    processor = ForecastProcessor(read_sites(settings.ems_file),
                                  interval_s=settings.forecast_interval_s, options=options)
    return Runtime(processor, settings.bootstrap)
