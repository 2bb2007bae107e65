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

import asyncpg

from projections.framework import Projection, Record
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
                 "price_eur_mwh", "volume_mwh", "data_source", "event_id", "seq")
INDICATOR_COLUMNS = ("market", "as_of", "mark_price_eur_mwh", "ema_eur_mwh", "ema_span",
                     "vwap_eur_mwh", "vwap_basis", "vwap_window_s", "tick_count", "trade_count",
                     "event_id", "seq")


class MarketProjection(Projection):
    """Price ticks and indicators into ``market.*``; bulk writes via COPY into temp tables."""

    name = "market"
    schema = "market"
    topics = (PRICE_TICKS.name, INDICATORS.name)
    migrations = (MIGRATION_1,)

    async def prepare(self, conn: asyncpg.Connection, schema: str) -> None:
        await conn.execute(f"""
            CREATE TEMP TABLE IF NOT EXISTS tmp_prices
                (LIKE {schema}.prices INCLUDING DEFAULTS, seq bigint) ON COMMIT DELETE ROWS;
            CREATE TEMP TABLE IF NOT EXISTS tmp_indicators
                (LIKE {schema}.indicators INCLUDING DEFAULTS, seq bigint) ON COMMIT DELETE ROWS;
        """)

    async def apply(self, conn: asyncpg.Connection, schema: str, records: Sequence[Record]) -> None:
        prices, indicators = [], []
        for seq, rec in enumerate(records):
            p = rec.envelope.payload
            if isinstance(p, PriceTickReceived):
                prices.append((p.market, p.delivery_start, p.delivery_end, p.resolution,
                               p.bidding_zone, p.price_eur_mwh, p.volume_mwh, p.data_source,
                               rec.envelope.event_id, seq))
            elif isinstance(p, MarketIndicatorsUpdated):
                indicators.append((p.market, p.as_of, p.mark_price_eur_mwh, p.ema_eur_mwh,
                                   p.ema_span, p.vwap_eur_mwh, p.vwap_basis, p.vwap_window_s,
                                   p.tick_count, p.trade_count, rec.envelope.event_id, seq))
        if prices:
            await conn.copy_records_to_table("tmp_prices", records=prices, columns=PRICE_COLUMNS)
            await conn.execute(f"""
                INSERT INTO {schema}.summary AS s
                    (market, bidding_zone, ticks, first_delivery, last_delivery)
                SELECT market, max(bidding_zone), count(*), min(delivery_start), max(delivery_start)
                FROM tmp_prices GROUP BY market
                ON CONFLICT (market) DO UPDATE SET
                    ticks = s.ticks + EXCLUDED.ticks,
                    first_delivery = least(s.first_delivery, EXCLUDED.first_delivery),
                    last_delivery = greatest(s.last_delivery, EXCLUDED.last_delivery);
                INSERT INTO {schema}.prices
                SELECT DISTINCT ON (market, delivery_start)
                    market, delivery_start, delivery_end, resolution, bidding_zone,
                    price_eur_mwh, volume_mwh, data_source, event_id
                FROM tmp_prices ORDER BY market, delivery_start, seq DESC
                ON CONFLICT (market, delivery_start) DO UPDATE SET
                    delivery_end = EXCLUDED.delivery_end, resolution = EXCLUDED.resolution,
                    price_eur_mwh = EXCLUDED.price_eur_mwh, volume_mwh = EXCLUDED.volume_mwh,
                    data_source = EXCLUDED.data_source, event_id = EXCLUDED.event_id;
            """)
        if indicators:
            await conn.copy_records_to_table("tmp_indicators", records=indicators,
                                             columns=INDICATOR_COLUMNS)
            await conn.execute(f"""
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
                    trade_count = EXCLUDED.trade_count, event_id = EXCLUDED.event_id;
            """)


