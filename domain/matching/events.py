"""Builders of the engine's output events.

The values come from validated commands and exact tick/lot arithmetic, so the events are built
with ``model_construct`` (no re-validation on the hot path); `tests/unit/test_matching_engine.py`
re-validates every emitted event to keep this honest.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from domain.matching.orders import OrderState
from schemas.trading import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    RejectReason,
    Side,
    TradeExecuted,
)

TRADE_NAMESPACE = uuid.UUID("5d3e6c1a-6f0b-5b7e-9a51-0c1f3f1b7e42")
"""uuid5 namespace of trade ids: ``uuid5(ns, f"{aggressor order id}:{its filled lots before}")``
(the aggressor's filled lots only grow, so ids are unique and replays reproduce them)."""

CancelReason = Literal["requested", "ioc_remainder", "self_trade_prevention", "kill_switch"]


def trade_id(aggressor_id: uuid.UUID, filled_before: int) -> uuid.UUID:
    return uuid.uuid5(TRADE_NAMESPACE, f"{aggressor_id}:{filled_before}")


def accepted(o: OrderState, at: datetime) -> OrderAccepted:
    spec = o.spec
    return OrderAccepted.model_construct(
        order_id=o.order_id, account=o.account, site=o.site, market=o.market, side=o.side,
        quantity_mwh=spec.quantity(o.quantity), limit_price_eur_mwh=spec.price(o.price),
        time_in_force=o.time_in_force, delivery_start=o.delivery_start,
        delivery_end=o.delivery_end, client_order_id=o.client_order_id, accepted_at=at,
    )


def rejected(
    order_id: uuid.UUID, site: str, market: str, account: str | None, reason: RejectReason,
    detail: str, at: datetime,
) -> OrderRejected:
    return OrderRejected.model_construct(
        order_id=order_id, site=site, market=market, account=account, stage="matching",
        reason=reason, detail=detail, rejected_at=at,
    )


def modified(o: OrderState, lost_priority: bool, at: datetime) -> OrderModified:
    spec = o.spec
    return OrderModified.model_construct(
        order_id=o.order_id, account=o.account, site=o.site, market=o.market,
        quantity_mwh=spec.quantity(o.quantity), limit_price_eur_mwh=spec.price(o.price),
        remaining_quantity_mwh=spec.quantity(o.remaining), lost_priority=lost_priority,
        modified_at=at,
    )


def fill(
    o: OrderState, trade: uuid.UUID, lots: int, price: Decimal, at: datetime
) -> OrderFilled | OrderPartiallyFilled:
    """The fill event of `o` after `lots` were added to its `filled`."""
    spec = o.spec
    cls = OrderPartiallyFilled if o.filled < o.quantity else OrderFilled
    return cls.model_construct(
        order_id=o.order_id, account=o.account, site=o.site, market=o.market, trade_id=trade,
        side=o.side, fill_quantity_mwh=spec.quantity(lots), fill_price_eur_mwh=price,
        filled_quantity_mwh=spec.quantity(o.filled),
        remaining_quantity_mwh=spec.quantity(o.quantity - o.filled), executed_at=at,
    )


def trade(
    trade: uuid.UUID, taker: OrderState, maker: OrderState, lots: int, price: Decimal,
    at: datetime,
) -> TradeExecuted:
    buy, sell = (taker, maker) if taker.side is Side.BUY else (maker, taker)
    return TradeExecuted.model_construct(
        trade_id=trade, market=taker.market, delivery_start=taker.delivery_start,
        delivery_end=taker.delivery_end, quantity_mwh=taker.spec.quantity(lots),
        price_eur_mwh=price, buy_order_id=buy.order_id, sell_order_id=sell.order_id,
        buy_account=buy.account, sell_account=sell.account, buy_site=buy.site,
        sell_site=sell.site, aggressor_side=taker.side, price_rule=taker.spec.price_rule,
        executed_at=at,
    )


def cancelled(o: OrderState, reason: CancelReason, at: datetime) -> OrderCancelled:
    return OrderCancelled.model_construct(
        order_id=o.order_id, account=o.account, site=o.site, market=o.market,
        remaining_quantity_mwh=o.spec.quantity(o.remaining), reason=reason, cancelled_at=at,
    )


def expired(o: OrderState, at: datetime) -> OrderExpired:
    return OrderExpired.model_construct(
        order_id=o.order_id, account=o.account, site=o.site, market=o.market,
        remaining_quantity_mwh=o.spec.quantity(o.remaining), expired_at=at,
    )
