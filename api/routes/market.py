"""Market data: price history and indicators from the ``market`` projection."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel

from api.deps import PoolDep

router = APIRouter(prefix="/api/market", tags=["market"])

BUCKETS = {"PT15M": "15 minutes", "PT60M": "1 hour", "P1D": "1 day", "P7D": "7 days"}


class PricePublic(BaseModel):
    market: str
    delivery_start: datetime
    delivery_end: datetime
    price_eur_mwh: float
    min_eur_mwh: float | None = None
    max_eur_mwh: float | None = None
    periods: int = 1
    data_source: str | None = None


class PricesPublic(BaseModel):
    market: str | None
    resolution: str
    count: int
    prices: list[PricePublic]


class IndicatorPublic(BaseModel):
    market: str
    as_of: datetime
    mark_price_eur_mwh: float
    ema_eur_mwh: float
    ema_span: int
    vwap_eur_mwh: float
    vwap_basis: str
    vwap_window_s: int
    tick_count: int
    trade_count: int


class MarketPublic(BaseModel):
    market: str
    bidding_zone: str
    ticks: int
    first_delivery: datetime
    last_delivery: datetime


def _check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, detail="end must be after start")


@router.get("/markets", response_model=list[MarketPublic])
async def list_markets(pool: PoolDep) -> list[MarketPublic]:
    """Markets with price data, with tick counts and delivery range."""
    rows = await pool.fetch("SELECT * FROM market.summary ORDER BY market")
    return [MarketPublic(**dict(r)) for r in rows]


@router.get("/prices", response_model=PricesPublic)
async def prices(
    pool: PoolDep,
    market: str | None = Query(None, description="Market id; default: the market with most ticks."),
    start: AwareDatetime | None = Query(
        None, description="Delivery start from (inclusive), ISO 8601."
    ),
    end: AwareDatetime | None = Query(
        None, description="Delivery start until (exclusive), ISO 8601."
    ),
    resolution: Literal["native", "PT15M", "PT60M", "P1D", "P7D"] = Query(
        "native", description="native = as published; otherwise mean per bucket (UTC)."),
    limit: int = Query(1000, ge=1, le=100_000, description="Most recent N periods of the range."),
) -> PricesPublic:
    """Price history of one market over a delivery-time range, optionally resampled."""
    _check_range(start, end)
    if market is None:
        market = await pool.fetchval(
            "SELECT market FROM market.summary ORDER BY ticks DESC LIMIT 1"
        )
        if market is None:
            return PricesPublic(market=None, resolution=resolution, count=0, prices=[])
    where = "market = $1 AND ($2::timestamptz IS NULL OR delivery_start >= $2) " \
            "AND ($3::timestamptz IS NULL OR delivery_start < $3)"
    if resolution == "native":
        sql = f"""SELECT * FROM (SELECT market, delivery_start, delivery_end, price_eur_mwh,
                         data_source FROM market.prices WHERE {where}
                         ORDER BY delivery_start DESC LIMIT $4) t ORDER BY delivery_start"""
        rows = await pool.fetch(sql, market, start, end, limit)
        items = [PricePublic(**dict(r)) for r in rows]
    else:
        bucket = BUCKETS[resolution]
        sql = f"""SELECT * FROM (
                    SELECT market, date_bin('{bucket}', delivery_start, '2000-01-03 00:00+00') AS b,
                           avg(price_eur_mwh) AS price, min(price_eur_mwh) AS lo,
                           max(price_eur_mwh) AS hi, count(*) AS n
                    FROM market.prices WHERE {where}
                    GROUP BY market, b ORDER BY b DESC LIMIT $4) t ORDER BY b"""
        rows = await pool.fetch(sql, market, start, end, limit)
        step = {"PT15M": 900, "PT60M": 3600, "P1D": 86400, "P7D": 7 * 86400}[resolution]
        from datetime import timedelta

        items = [PricePublic(market=r["market"], delivery_start=r["b"],
                             delivery_end=r["b"] + timedelta(seconds=step),
                             price_eur_mwh=r["price"], min_eur_mwh=r["lo"], max_eur_mwh=r["hi"],
                             periods=r["n"])
                 for r in rows]
    return PricesPublic(market=market, resolution=resolution, count=len(items), prices=items)


@router.get("/indicators", response_model=list[IndicatorPublic])
async def indicators(
    pool: PoolDep,
    market: str | None = Query(None, description="Market id; default: all markets."),
    history: bool = Query(False, description="false: latest per market; true: the series."),
    start: AwareDatetime | None = Query(None),
    end: AwareDatetime | None = Query(None),
    limit: int = Query(1000, ge=1, le=100_000),
) -> list[IndicatorPublic]:
    """Mark price, EMA and VWAP: the latest per market, or their history."""
    _check_range(start, end)
    cols = ("market, as_of, mark_price_eur_mwh, ema_eur_mwh, ema_span, vwap_eur_mwh, vwap_basis, "
            "vwap_window_s, tick_count, trade_count")
    where = ("($1::text IS NULL OR market = $1) AND ($2::timestamptz IS NULL OR as_of >= $2) "
             "AND ($3::timestamptz IS NULL OR as_of < $3)")
    if history:
        sql = (f"SELECT * FROM (SELECT {cols} FROM market.indicators WHERE {where} "
               "ORDER BY as_of DESC LIMIT $4) t ORDER BY market, as_of")
    else:
        sql = (f"SELECT DISTINCT ON (market) {cols} FROM market.indicators WHERE {where} "
               "ORDER BY market, as_of DESC LIMIT $4")
    rows = await pool.fetch(sql, market, start, end, limit)
    if market is not None and not rows and not history:
        raise HTTPException(404, detail=f"no indicators for market {market!r}")
    return [IndicatorPublic(**dict(r)) for r in rows]
