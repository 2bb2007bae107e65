"""Trading: submit/cancel/modify orders (published as commands), read orders, trades, the book,
positions and PnL from the ``trading`` projection, and a live SSE stream of order/trade events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import PoolDep, ProducerDep, SettingsDep
from infra.kafka_io import partitions_of, publish
from schemas.catalog import ORDER_COMMANDS_TOPIC, ORDER_EVENTS_TOPIC, TRADES
from schemas.envelope import decode, encode, headers, new_envelope
from schemas.trading import CancelOrder, ModifyOrder, SetKillSwitch, Side, SubmitOrder, TimeInForce

router = APIRouter(prefix="/api", tags=["trading"])
SOURCE = "api"


class OrderRequest(BaseModel):
    """A limit order. Quantity MWh and price EUR/MWh as decimal strings or numbers."""

    site: str = Field(min_length=1, examples=["site-1"])
    account: str | None = Field(default=None, description="Default: the site id.")
    market: str = Field(min_length=1, examples=["EPEX_AT_INTRADAY_15MIN"])
    side: Side
    quantity_mwh: Decimal = Field(gt=0, examples=["0.5"])
    limit_price_eur_mwh: Decimal = Field(examples=["95.20"])
    time_in_force: TimeInForce = TimeInForce.GTC
    delivery_start: AwareDatetime
    delivery_end: AwareDatetime | None = Field(default=None, description="Default: start + 15 min.")
    client_order_id: str | None = Field(default=None, max_length=64)


class ModifyRequest(BaseModel):
    new_quantity_mwh: Decimal | None = Field(default=None, gt=0)
    new_limit_price_eur_mwh: Decimal | None = None


class KillSwitchRequest(BaseModel):
    site: str | None = Field(default=None, description="None = global kill switch.")
    engaged: bool
    reason: str = ""


def _jsonable(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal | uuid.UUID) else v) for k, v in dict(row).items()}


async def _order_row(pool: Any, order_id: uuid.UUID) -> Any:
    return await pool.fetchrow("SELECT * FROM trading.orders WHERE order_id=$1", order_id)


@router.post("/orders", status_code=202)
async def submit_order(body: OrderRequest, pool: PoolDep, producer: ProducerDep,
                       wait: bool = Query(False, description="Answer with acceptance/rejection."),
                       timeout_s: float = Query(5.0, gt=0, le=30)) -> JSONResponse:
    """Publish SubmitOrder; 202 with the order id, or with wait=true the outcome."""
    end = body.delivery_end or body.delivery_start + timedelta(minutes=15)
    if end <= body.delivery_start:
        raise HTTPException(422, detail="delivery_end must be after delivery_start")
    order_id = uuid.uuid4()
    now = datetime.now(UTC)
    command = SubmitOrder(order_id=order_id, client_order_id=body.client_order_id,
                          account=body.account or body.site, site=body.site, market=body.market,
                          side=body.side, quantity_mwh=body.quantity_mwh,
                          limit_price_eur_mwh=body.limit_price_eur_mwh,
                          time_in_force=body.time_in_force, delivery_start=body.delivery_start,
                          delivery_end=end, submitted_at=now)
    envelope = new_envelope(command, occurred_at=now, source=SOURCE, correlation_id=order_id)
    await (await publish(producer, ORDER_COMMANDS_TOPIC.name, envelope))
    if wait:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            row = await _order_row(pool, order_id)
            if row is not None:
                code = 201 if row["status"] != "rejected" else 422
                return JSONResponse(
                    jsonable_encoder(_jsonable(row) | {"event_id": str(envelope.event_id)}), code)
            await asyncio.sleep(0.05)
    return JSONResponse({"order_id": str(order_id), "status": "submitted",
                         "event_id": str(envelope.event_id)}, 202)


async def _existing(pool: Any, order_id: uuid.UUID) -> Any:
    row = await _order_row(pool, order_id)
    if row is None:
        raise HTTPException(404, detail=f"unknown order {order_id}")
    if row["status"] not in ("open", "partially_filled"):
        raise HTTPException(409, detail=f"order {order_id} is {row['status']}")
    return row


@router.delete("/orders/{order_id}", status_code=202)
async def cancel_order(order_id: uuid.UUID, pool: PoolDep, producer: ProducerDep) -> dict[str, str]:
    """Publish CancelOrder for an open order."""
    row = await _existing(pool, order_id)
    now = datetime.now(UTC)
    command = CancelOrder(order_id=order_id, site=row["site"], market=row["market"],
                          requested_at=now)
    await (await publish(producer, ORDER_COMMANDS_TOPIC.name,
                         new_envelope(command, occurred_at=now, source=SOURCE,
                                      correlation_id=order_id)))
    return {"order_id": str(order_id), "status": "cancel_requested"}


@router.patch("/orders/{order_id}", status_code=202)
async def modify_order(order_id: uuid.UUID, body: ModifyRequest, pool: PoolDep,
                       producer: ProducerDep) -> dict[str, str]:
    """Publish ModifyOrder (new total quantity and/or limit price)."""
    if body.new_quantity_mwh is None and body.new_limit_price_eur_mwh is None:
        raise HTTPException(422, detail="nothing to modify")
    row = await _existing(pool, order_id)
    now = datetime.now(UTC)
    command = ModifyOrder(order_id=order_id, site=row["site"], market=row["market"],
                          new_quantity_mwh=body.new_quantity_mwh,
                          new_limit_price_eur_mwh=body.new_limit_price_eur_mwh, requested_at=now)
    await (await publish(producer, ORDER_COMMANDS_TOPIC.name,
                         new_envelope(command, occurred_at=now, source=SOURCE,
                                      correlation_id=order_id)))
    return {"order_id": str(order_id), "status": "modify_requested"}


@router.get("/orders")
async def list_orders(pool: PoolDep, status: str | None = None, market: str | None = None,
                      site: str | None = None,
                      limit: int = Query(200, ge=1, le=10_000)) -> list[dict[str, Any]]:
    """Orders, newest first; filter by status, market, site."""
    rows = await pool.fetch(
        "SELECT * FROM trading.orders WHERE ($1::text IS NULL OR status=$1) AND "
        "($2::text IS NULL OR market=$2) AND ($3::text IS NULL OR site=$3) "
        "ORDER BY created_at DESC LIMIT $4", status, market, site, limit)
    return [_jsonable(r) for r in rows]


@router.get("/orders/{order_id}")
async def get_order(order_id: uuid.UUID, pool: PoolDep) -> dict[str, Any]:
    """One order with its event history."""
    row = await _order_row(pool, order_id)
    if row is None:
        raise HTTPException(404, detail=f"unknown order {order_id}")
    events = await pool.fetch("SELECT event_type, occurred_at, payload FROM trading.order_events "
                              "WHERE order_id=$1 ORDER BY occurred_at, \"offset\"", order_id)
    return _jsonable(row) | {"events": [
        {"event_type": e["event_type"], "occurred_at": e["occurred_at"],
         "payload": orjson.loads(e["payload"])} for e in events]}


@router.get("/trades")
async def list_trades(pool: PoolDep, market: str | None = None, site: str | None = None,
                      start: AwareDatetime | None = None, end: AwareDatetime | None = None,
                      limit: int = Query(200, ge=1, le=10_000)) -> list[dict[str, Any]]:
    """Trades, newest first; filter by market, site (either side) and execution time."""
    rows = await pool.fetch(
        "SELECT * FROM trading.trades WHERE ($1::text IS NULL OR market=$1) AND "
        "($2::text IS NULL OR buy_site=$2 OR sell_site=$2) AND "
        "($3::timestamptz IS NULL OR executed_at >= $3) AND "
        "($4::timestamptz IS NULL OR executed_at < $4) ORDER BY executed_at DESC LIMIT $5",
        market, site, start, end, limit)
    return [_jsonable(r) for r in rows]


@router.get("/book/{market}")
async def book(market: str, pool: PoolDep, delivery_start: AwareDatetime | None = None,
               levels: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    """Depth per price level (open orders) for each delivery period of a market."""
    rows = await pool.fetch(
        "SELECT delivery_start, side, limit_price_eur_mwh AS price, "
        "sum(remaining_quantity_mwh) AS quantity_mwh, count(*) AS orders "
        "FROM trading.orders WHERE market=$1 AND status IN ('open','partially_filled') "
        "AND ($2::timestamptz IS NULL OR delivery_start=$2) "
        "GROUP BY delivery_start, side, limit_price_eur_mwh ORDER BY delivery_start", market,
        delivery_start)
    periods: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        period = periods.setdefault(r["delivery_start"].isoformat(), {"bids": [], "asks": []})
        period["bids" if r["side"] == "BUY" else "asks"].append(
            {"price_eur_mwh": str(r["price"]), "quantity_mwh": str(r["quantity_mwh"]),
             "orders": r["orders"]})
    for period in periods.values():
        period["bids"] = sorted(period["bids"], key=lambda x: -Decimal(x["price_eur_mwh"]))[:levels]
        period["asks"] = sorted(period["asks"], key=lambda x: Decimal(x["price_eur_mwh"]))[:levels]
    return {"market": market, "periods": periods}


@router.get("/positions")
async def positions(pool: PoolDep, site: str | None = None,
                    market: str | None = None) -> list[dict[str, Any]]:
    """Net position, exposure, realised and unrealised PnL (against the mark) per site, market."""
    rows = await pool.fetch(
        """SELECT p.*, m.mark_price_eur_mwh,
                  p.net_mwh * (m.mark_price_eur_mwh::numeric - p.avg_open_price_eur_mwh)
                      AS unrealised_pnl_eur,
                  coalesce(e.buy_exposure, 0) AS buy_exposure_eur,
                  coalesce(e.sell_exposure, 0) AS sell_exposure_eur
           FROM trading.positions p
           LEFT JOIN trading.marks m ON m.market = p.market
           LEFT JOIN (SELECT site, market,
                  sum(remaining_quantity_mwh * limit_price_eur_mwh) FILTER (WHERE side='BUY')
                      AS buy_exposure,
                  sum(remaining_quantity_mwh * limit_price_eur_mwh) FILTER (WHERE side='SELL')
                      AS sell_exposure
                  FROM trading.orders WHERE status IN ('open','partially_filled')
                  GROUP BY site, market) e ON e.site = p.site AND e.market = p.market
           WHERE ($1::text IS NULL OR p.site=$1) AND ($2::text IS NULL OR p.market=$2)
           ORDER BY p.site, p.market""", site, market)
    return [_jsonable(r) for r in rows]


@router.post("/risk/kill-switch", status_code=202)
async def kill_switch(body: KillSwitchRequest, producer: ProducerDep) -> dict[str, Any]:
    """Engage or release the kill switch of a site, or globally (sent to every partition)."""
    now = datetime.now(UTC)
    command = SetKillSwitch(site=body.site, engaged=body.engaged, reason=body.reason,
                            requested_at=now)
    envelope = new_envelope(command, occurred_at=now, source=SOURCE)
    if body.site is not None:
        await (await publish(producer, ORDER_COMMANDS_TOPIC.name, envelope))
        return {"scope": body.site, "engaged": body.engaged}
    partitions = await producer.partitions_for(ORDER_COMMANDS_TOPIC.name)
    for p in sorted(partitions):
        await (await producer.send(ORDER_COMMANDS_TOPIC.name, encode(envelope), key=b"*",
                                   partition=p, headers=headers(envelope)))
    return {"scope": "global", "engaged": body.engaged, "partitions": len(partitions)}


@router.get("/stream/trading")
async def stream(request: Request, settings: SettingsDep) -> StreamingResponse:
    """Server-sent events: every new order event and trade (``event: <EventType>``)."""

    async def events() -> AsyncIterator[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None,
                                    isolation_level="read_committed", enable_auto_commit=False)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, [ORDER_EVENTS_TOPIC.name, TRADES.name])
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            yield b": connected\n\n"
            while not await request.is_disconnected():
                batch = await consumer.getmany(timeout_ms=1000)
                if not batch:
                    yield b": keep-alive\n\n"
                for records in batch.values():
                    for r in records:
                        try:
                            env = decode(r.value)
                        except ValueError:
                            continue
                        yield (f"event: {env.event_type}\nid: {env.event_id}\n".encode()
                               + b"data: " + r.value + b"\n\n")
        finally:
            await consumer.stop()

    return StreamingResponse(events(), media_type="text/event-stream")
