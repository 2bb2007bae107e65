"""Trading read models: orders with their history, trades, positions and PnL.

Tables (schema ``trading``):
- ``orders``: one row per order id, current status (``open``, ``partially_filled``, ``filled``,
  ``cancelled``, ``expired``, ``rejected``), quantities, average fill price, reject reason.
- ``order_events``: every lifecycle event of an order (for ``GET /api/orders/{id}``).
- ``trades``: one row per `TradeExecuted`.
- ``positions``: per (site, market): bought/sold MWh, net position, average open price and
  realised PnL by the average-cost method: a fill that reduces the position realises
  ``(exit price - average entry price) x quantity`` for a long position (the mirror for a
  short one); a fill through zero opens the remainder at the fill price.
- ``marks``: latest mark price per market (from `MarketIndicatorsUpdated`, else the last trade)
  for unrealised PnL ``net position x (mark - average open price)``.
Buy/sell exposure (seed 000: G_EXPO_E / G_EXPO_N) = open BUY / SELL orders' remaining MWh x
limit price, computed from ``orders``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import asyncpg
import orjson

from infra.metrics import EXPOSURE_BUY, EXPOSURE_SELL, PNL_REALISED, POSITION
from projections.framework import Projection, Record
from schemas.catalog import INDICATORS, ORDER_EVENTS_TOPIC, TRADES
from schemas.market import MarketIndicatorsUpdated
from schemas.trading import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    Side,
    TradeExecuted,
)

MIGRATION_1 = """
CREATE TABLE {schema}.orders (
    order_id uuid PRIMARY KEY,
    client_order_id text,
    account text,
    site text NOT NULL,
    market text NOT NULL,
    side text,
    quantity_mwh numeric,
    limit_price_eur_mwh numeric,
    time_in_force text,
    delivery_start timestamptz,
    delivery_end timestamptz,
    status text NOT NULL,
    filled_quantity_mwh numeric NOT NULL DEFAULT 0,
    remaining_quantity_mwh numeric NOT NULL DEFAULT 0,
    fill_value_eur numeric NOT NULL DEFAULT 0,
    reject_reason text,
    reject_detail text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX ON {schema}.orders (site, status);
CREATE INDEX ON {schema}.orders (market, status);
CREATE TABLE {schema}.order_events (
    topic text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
    order_id uuid NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX ON {schema}.order_events (order_id);
CREATE TABLE {schema}.trades (
    trade_id uuid PRIMARY KEY,
    market text NOT NULL,
    delivery_start timestamptz NOT NULL,
    delivery_end timestamptz NOT NULL,
    quantity_mwh numeric NOT NULL,
    price_eur_mwh numeric NOT NULL,
    buy_order_id uuid NOT NULL, sell_order_id uuid NOT NULL,
    buy_account text NOT NULL, sell_account text NOT NULL,
    buy_site text NOT NULL, sell_site text NOT NULL,
    aggressor_side text NOT NULL,
    price_rule text NOT NULL,
    executed_at timestamptz NOT NULL
);
CREATE INDEX ON {schema}.trades (market, executed_at);
CREATE TABLE {schema}.positions (
    site text NOT NULL,
    market text NOT NULL,
    bought_mwh numeric NOT NULL DEFAULT 0,
    sold_mwh numeric NOT NULL DEFAULT 0,
    net_mwh numeric NOT NULL DEFAULT 0,
    avg_open_price_eur_mwh numeric NOT NULL DEFAULT 0,
    realised_pnl_eur numeric NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site, market)
);
CREATE TABLE {schema}.marks (
    market text PRIMARY KEY,
    mark_price_eur_mwh double precision NOT NULL,
    as_of timestamptz NOT NULL
);
"""


def apply_fill(net: Decimal, avg: Decimal, side: Side, qty: Decimal,
               price: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Average-cost position update: returns (new net MWh, new average open price, realised EUR).

    `net` > 0 is long (energy bought, stored), < 0 short. Pure; units MWh and EUR/MWh.
    """
    signed = qty if side is Side.BUY else -qty
    realised = Decimal(0)
    if net == 0 or (net > 0) == (signed > 0):  # opening or adding
        new_net = net + signed
        new_avg = (abs(net) * avg + qty * price) / abs(new_net)
        return new_net, new_avg, realised
    closing = min(qty, abs(net))
    realised = (price - avg) * closing if net > 0 else (avg - price) * closing
    new_net = net + signed
    if new_net == 0:
        return new_net, Decimal(0), realised
    if (new_net > 0) == (net > 0):  # reduced, same direction: average unchanged
        return new_net, avg, realised
    return new_net, price, realised  # flipped: the remainder opens at the fill price



def _upsert_mark(schema: str) -> str:
    """Upsert of a market's mark price (EUR/MWh) unless a newer one is stored."""
    return (f"INSERT INTO {schema}.marks VALUES ($1, $2, $3) ON CONFLICT (market) DO UPDATE "
            "SET mark_price_eur_mwh = EXCLUDED.mark_price_eur_mwh, as_of = EXCLUDED.as_of "
            f"WHERE {schema}.marks.as_of <= EXCLUDED.as_of")

class TradingProjection(Projection):
    name = "trading"
    schema = "trading"
    topics = (ORDER_EVENTS_TOPIC.name, TRADES.name, INDICATORS.name)
    migrations = (MIGRATION_1,)

    async def apply(self, conn: asyncpg.Connection, schema: str, records: Sequence[Record]) -> None:
        touched: set[tuple[str, str]] = set()
        for rec in records:
            p = rec.envelope.payload
            at = rec.envelope.occurred_at
            if isinstance(p, MarketIndicatorsUpdated):
                await conn.execute(_upsert_mark(schema), p.market, p.mark_price_eur_mwh, p.as_of)
                continue
            if isinstance(p, TradeExecuted):
                await conn.execute(
                    f"INSERT INTO {schema}.trades VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,"
                    "$13,$14,$15) ON CONFLICT DO NOTHING",
                    p.trade_id, p.market, p.delivery_start, p.delivery_end, p.quantity_mwh,
                    p.price_eur_mwh, p.buy_order_id, p.sell_order_id, p.buy_account, p.sell_account,
                    p.buy_site, p.sell_site, p.aggressor_side.value, p.price_rule, p.executed_at)
                await conn.execute(_upsert_mark(schema), p.market, float(p.price_eur_mwh),
                                   p.executed_at)
                continue
            order_id = getattr(p, "order_id", None)
            if order_id is None:
                continue
            await conn.execute(
                f"INSERT INTO {schema}.order_events VALUES ($1,$2,$3,$4,$5,$6,$7) "
                "ON CONFLICT DO NOTHING", rec.topic, rec.partition, rec.offset, order_id,
                p.event_type, at, orjson.dumps(p.model_dump(mode="json")).decode())
            await self._order(conn, schema, p, at, touched)
        await self._publish_gauges(conn, schema, touched)

    async def _order(self, conn: asyncpg.Connection, schema: str, p: object, at: object,
                     touched: set[tuple[str, str]]) -> None:
        t = f"{schema}.orders"
        if isinstance(p, OrderAccepted):
            await conn.execute(
                f"INSERT INTO {t} (order_id, client_order_id, account, site, market, side, "
                "quantity_mwh, limit_price_eur_mwh, time_in_force, delivery_start, delivery_end, "
                "status, remaining_quantity_mwh, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,"
                "$7,$8,$9,$10,$11,'open',$7,$12,$12) ON CONFLICT (order_id) DO NOTHING",
                p.order_id, p.client_order_id, p.account, p.site, p.market, p.side.value,
                p.quantity_mwh, p.limit_price_eur_mwh, p.time_in_force.value, p.delivery_start,
                p.delivery_end, p.accepted_at)
            touched.add((p.site, p.market))
        elif isinstance(p, OrderRejected):
            await conn.execute(
                f"INSERT INTO {t} (order_id, account, site, market, status, reject_reason, "
                "reject_detail, created_at, updated_at) "
                "VALUES ($1,$2,$3,$4,'rejected',$5,$6,$7,$7) "
                "ON CONFLICT (order_id) DO UPDATE SET status='rejected', reject_reason=$5, "
                "reject_detail=$6, remaining_quantity_mwh=0, updated_at=$7",
                p.order_id, p.account, p.site, p.market, p.reason, p.detail, p.rejected_at)
            touched.add((p.site, p.market))
        elif isinstance(p, OrderModified):
            await conn.execute(
                f"UPDATE {t} SET quantity_mwh=$2, limit_price_eur_mwh=$3, "
                "remaining_quantity_mwh=$4,"
                " updated_at=$5 WHERE order_id=$1", p.order_id, p.quantity_mwh,
                p.limit_price_eur_mwh, p.remaining_quantity_mwh, p.modified_at)
            touched.add((p.site, p.market))
        elif isinstance(p, OrderPartiallyFilled | OrderFilled):
            status = "filled" if isinstance(p, OrderFilled) else "partially_filled"
            await conn.execute(
                f"UPDATE {t} SET status=$2, filled_quantity_mwh=$3, remaining_quantity_mwh=$4, "
                "fill_value_eur = fill_value_eur + $5, updated_at=$6 WHERE order_id=$1",
                p.order_id, status, p.filled_quantity_mwh, p.remaining_quantity_mwh,
                p.fill_quantity_mwh * p.fill_price_eur_mwh, p.executed_at)
            await self._position(conn, schema, p)
            touched.add((p.site, p.market))
        elif isinstance(p, OrderCancelled | OrderExpired):
            status = "cancelled" if isinstance(p, OrderCancelled) else "expired"
            when = p.cancelled_at if isinstance(p, OrderCancelled) else p.expired_at
            await conn.execute(
                f"UPDATE {t} SET status=$2, remaining_quantity_mwh=0, updated_at=$3 "
                "WHERE order_id=$1", p.order_id, status, when)
            touched.add((p.site, p.market))

    async def _position(self, conn: asyncpg.Connection, schema: str,
                        p: OrderPartiallyFilled | OrderFilled) -> None:
        row = await conn.fetchrow(
            f"SELECT net_mwh, avg_open_price_eur_mwh FROM {schema}.positions "
            "WHERE site=$1 AND market=$2 FOR UPDATE", p.site, p.market)
        net, avg = ((row["net_mwh"], row["avg_open_price_eur_mwh"]) if row
                    else (Decimal(0), Decimal(0)))
        new_net, new_avg, realised = apply_fill(net, avg, p.side, p.fill_quantity_mwh,
                                                p.fill_price_eur_mwh)
        bought = p.fill_quantity_mwh if p.side is Side.BUY else Decimal(0)
        sold = p.fill_quantity_mwh if p.side is Side.SELL else Decimal(0)
        await conn.execute(
            f"INSERT INTO {schema}.positions AS x (site, market, bought_mwh, sold_mwh, net_mwh, "
            "avg_open_price_eur_mwh, realised_pnl_eur, updated_at) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
            "ON CONFLICT (site, market) DO UPDATE SET bought_mwh = x.bought_mwh + $3, "
            "sold_mwh = x.sold_mwh + $4, net_mwh = $5, avg_open_price_eur_mwh = $6, "
            "realised_pnl_eur = x.realised_pnl_eur + $7, updated_at = $8",
            p.site, p.market, bought, sold, new_net, new_avg, realised, p.executed_at)

    async def _publish_gauges(self, conn: asyncpg.Connection, schema: str,
                              touched: set[tuple[str, str]]) -> None:
        for site, market in touched:
            row = await conn.fetchrow(
                f"""SELECT
                    coalesce(sum(remaining_quantity_mwh * limit_price_eur_mwh) FILTER (
                        WHERE side='BUY' AND status IN ('open','partially_filled')), 0) b,
                    coalesce(sum(remaining_quantity_mwh * limit_price_eur_mwh) FILTER (
                        WHERE side='SELL' AND status IN ('open','partially_filled')), 0) s
                    FROM {schema}.orders WHERE site=$1 AND market=$2""", site, market)
            pos = await conn.fetchrow(f"SELECT net_mwh, realised_pnl_eur FROM {schema}.positions "
                                      "WHERE site=$1 AND market=$2", site, market)
            EXPOSURE_BUY.labels(site, market).set(float(row["b"]))
            EXPOSURE_SELL.labels(site, market).set(float(row["s"]))
            if pos is not None:
                POSITION.labels(site, market).set(float(pos["net_mwh"]))
                PNL_REALISED.labels(site, market).set(float(pos["realised_pnl_eur"]))
