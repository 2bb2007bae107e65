"""Market read models: price history, indicator history and a per-market summary.

Tables (schema ``market``):
- ``prices``: one row per (market, delivery_start); a later tick for the same period (a
  correction) replaces the earlier one.
- ``indicators``: one row per (market, as_of) of `MarketIndicatorsUpdated`.
- ``summary``: per market, ticks projected, first/last delivery start; counters, so a replayed
  message would double-count if offset tracking failed (the tests rely on that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from projections.framework import Projection, Record, no_cyclic_gc
from schemas.catalog import INDICATORS, PRICE_TICKS
from schemas.market import MarketIndicatorsUpdated, PriceTickReceived

MIGRATION_1 = """
CREATE TABLE {schema}.prices (
    market text NOT NULL,
    delivery_start timestamptz NOT NULL,
    delivery_end timestamptz NOT NULL,
    resolution text NOT NULL,
    bidding_zone text NOT NULL,
    price_eur_mwh double precision NOT NULL,
    volume_mwh double precision,
    data_source text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (market, delivery_start)
);
CREATE INDEX ON {schema}.prices (delivery_start);
CREATE TABLE {schema}.indicators (
    market text NOT NULL,
    as_of timestamptz NOT NULL,
    mark_price_eur_mwh double precision NOT NULL,
    ema_eur_mwh double precision NOT NULL,
    ema_span integer NOT NULL,
    vwap_eur_mwh double precision NOT NULL,
    vwap_basis text NOT NULL,
    vwap_window_s integer NOT NULL,
    tick_count bigint NOT NULL,
    trade_count bigint NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (market, as_of)
);
CREATE TABLE {schema}.summary (
    market text PRIMARY KEY,
    bidding_zone text NOT NULL,
    ticks bigint NOT NULL,
    first_delivery timestamptz NOT NULL,
    last_delivery timestamptz NOT NULL
);
"""

PRICE_COLUMNS = ("market", "delivery_start", "delivery_end", "resolution", "bidding_zone",
                 "price_eur_mwh", "volume_mwh", "data_source", "event_id")
INDICATOR_COLUMNS = ("market", "as_of", "mark_price_eur_mwh", "ema_eur_mwh", "ema_span",
                     "vwap_eur_mwh", "vwap_basis", "vwap_window_s", "tick_count", "trade_count",
                     "event_id")

UPSERT_PRICES = """
    INSERT INTO {schema}.prices
    SELECT DISTINCT ON (market, delivery_start)
        market, delivery_start, delivery_end, resolution, bidding_zone,
        price_eur_mwh, volume_mwh, data_source, event_id
    FROM tmp_prices ORDER BY market, delivery_start, seq DESC
    ON CONFLICT (market, delivery_start) DO UPDATE SET
        delivery_end = EXCLUDED.delivery_end, resolution = EXCLUDED.resolution,
        price_eur_mwh = EXCLUDED.price_eur_mwh, volume_mwh = EXCLUDED.volume_mwh,
        data_source = EXCLUDED.data_source, event_id = EXCLUDED.event_id
"""
UPSERT_INDICATORS = """
    INSERT INTO {schema}.indicators
    SELECT DISTINCT ON (market, as_of)
        market, as_of, mark_price_eur_mwh, ema_eur_mwh, ema_span, vwap_eur_mwh,
        vwap_basis, vwap_window_s, tick_count, trade_count, event_id
    FROM tmp_indicators ORDER BY market, as_of, seq DESC
    ON CONFLICT (market, as_of) DO UPDATE SET
        mark_price_eur_mwh = EXCLUDED.mark_price_eur_mwh,
        ema_eur_mwh = EXCLUDED.ema_eur_mwh, ema_span = EXCLUDED.ema_span,
        vwap_eur_mwh = EXCLUDED.vwap_eur_mwh, vwap_basis = EXCLUDED.vwap_basis,
        vwap_window_s = EXCLUDED.vwap_window_s, tick_count = EXCLUDED.tick_count,
        trade_count = EXCLUDED.trade_count, event_id = EXCLUDED.event_id
"""
UPSERT_SUMMARY = """
    INSERT INTO {schema}.summary AS s
        (market, bidding_zone, ticks, first_delivery, last_delivery)
    SELECT market, max(bidding_zone), sum(ticks)::bigint, min(first_delivery),
           max(last_delivery)
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
        AS b(market, bidding_zone, ticks, first_delivery, last_delivery)
    GROUP BY market
    ON CONFLICT (market) DO UPDATE SET
        ticks = s.ticks + EXCLUDED.ticks,
        first_delivery = least(s.first_delivery, EXCLUDED.first_delivery),
        last_delivery = greatest(s.last_delivery, EXCLUDED.last_delivery)
"""

CONFLICT_COOLDOWN = 16
"""After a batch whose rows conflicted, this many batches of that table go straight to the
upsert (a replay full of corrections would otherwise pay for a failed COPY every batch)."""


class MarketProjection(Projection):
    """Price ticks and indicators into ``market.*``.

    Rows go in with one COPY per table and batch. New keys, the common case, are COPYed
    straight into the table inside a savepoint; when a key repeats (within the batch or from
    an earlier one: a correction) the COPY fails on the primary key, is rolled back to the
    savepoint, and the batch goes through a temp table and ``INSERT .. ON CONFLICT`` instead,
    the last message of a key winning. ``summary`` gets one upsert per batch from per-market
    aggregates. Rows are identical either way.
    """

    name = "market"
    schema = "market"
    topics = (PRICE_TICKS.name, INDICATORS.name)
    migrations = (MIGRATION_1,)

    def __init__(self) -> None:
        self._cooldown = {"prices": 0, "indicators": 0}

    async def prepare(self, conn: asyncpg.Connection, schema: str) -> None:
        await conn.execute(f"""
            CREATE TEMP TABLE IF NOT EXISTS tmp_prices
                (LIKE {schema}.prices INCLUDING DEFAULTS, seq bigint) ON COMMIT DELETE ROWS;
            CREATE TEMP TABLE IF NOT EXISTS tmp_indicators
                (LIKE {schema}.indicators INCLUDING DEFAULTS, seq bigint) ON COMMIT DELETE ROWS;
        """)

    async def apply(self, conn: asyncpg.Connection, schema: str, records: Sequence[Record]) -> None:
        with no_cyclic_gc():
            envelopes = [r.envelope for r in records]
            prices = [(p.market, p.delivery_start, p.delivery_end, p.resolution, p.bidding_zone,
                       p.price_eur_mwh, p.volume_mwh, p.data_source, e.event_id)
                      for e in envelopes if isinstance(p := e.payload, PriceTickReceived)]
            indicators = [(p.market, p.as_of, p.mark_price_eur_mwh, p.ema_eur_mwh, p.ema_span,
                           p.vwap_eur_mwh, p.vwap_basis, p.vwap_window_s, p.tick_count,
                           p.trade_count, e.event_id)
                          for e in envelopes
                          if isinstance(p := e.payload, MarketIndicatorsUpdated)]
        if prices:
            await self._write(conn, schema, "prices", prices, PRICE_COLUMNS, UPSERT_PRICES)
            await conn.execute(UPSERT_SUMMARY.format(schema=schema), *_summary(prices))
        if indicators:
            await self._write(conn, schema, "indicators", indicators, INDICATOR_COLUMNS,
                              UPSERT_INDICATORS)

    async def _write(self, conn: asyncpg.Connection, schema: str, table: str,
                     rows: list[tuple[Any, ...]], columns: tuple[str, ...], upsert: str) -> None:
        """`rows` (in log order) into `table`: the last row of a key wins."""
        if self._cooldown[table] == 0:
            try:
                async with conn.transaction():  # a savepoint
                    await conn.copy_records_to_table(table, schema_name=schema, records=rows,
                                                     columns=columns)
                return
            except asyncpg.exceptions.UniqueViolationError:
                self._cooldown[table] = CONFLICT_COOLDOWN
        else:
            self._cooldown[table] -= 1
        await conn.copy_records_to_table(f"tmp_{table}", records=[
            (*row, seq) for seq, row in enumerate(rows)], columns=(*columns, "seq"))
        await conn.execute(upsert.format(schema=schema))


def _summary(prices: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Per (market, bidding zone) of a batch of price rows: count, first and last delivery."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in prices:
        market, start, zone = row[0], row[1], row[4]
        group = groups.get((market, zone))
        if group is None:
            groups[(market, zone)] = [1, start, start]
        else:
            group[0] += 1
            if start < group[1]:
                group[1] = start
            elif start > group[2]:
                group[2] = start
    keys = list(groups)
    return ([m for m, _ in keys], [z for _, z in keys], *map(list, zip(
        *groups.values(), strict=True)))
