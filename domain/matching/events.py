"""Builders of the engine's output events.

The values come from validated commands and exact tick/lot arithmetic, so the events are built
without re-validation on the hot path: `_Construct` does what pydantic's ``model_construct``
does for these models (plain fields, no aliases, no defaults factories, no post-init: checked
per class, else it falls back to ``model_construct``) at a fraction of its cost (it loops over
every field in Python). `tests/unit/test_matching_engine.py` re-validates every emitted event
and compares it with ``model_construct``'s result to keep this honest.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from hashlib import sha1
from typing import Any, Generic, Literal, TypeVar

from domain.matching.orders import OrderState
from schemas.base import Payload
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

M = TypeVar("M", bound=Payload)
_set = object.__setattr__
_new = object.__new__


class _Construct(Generic[M]):
    """``cls.model_construct(**values)`` for trusted values, fast for plain models."""

    def __init__(self, cls: type[M]) -> None:
        fields = cls.model_fields
        self.cls = cls
        self.names = tuple(fields)
        self.all_fields = set(fields)
        self.defaults = {n: f.default for n, f in fields.items() if not f.is_required()}
        self.plain = not (
            cls.__pydantic_post_init__ or cls.__pydantic_root_model__
            or cls.model_config.get("extra") == "allow"
            or any(f.alias or f.validation_alias or f.default_factory for f in fields.values()))

    def __call__(self, **values: Any) -> M:
        if not self.plain:
            return self.cls.model_construct(**values)  # type: ignore[return-value]
        names = self.names
        fields_set = set(values)
        if tuple(values) != names:  # missing fields, or not in field order
            defaults = self.defaults
            values = {n: values[n] if n in values else defaults[n] for n in names}
        model = self.cls.__new__(self.cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", fields_set)
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model

    def make(self, values: dict[str, Any]) -> M:
        """`__call__` for `values` that hold every field, in field order (the builders below)."""
        if not self.plain:
            return self.cls.model_construct(**values)  # type: ignore[return-value]
        model = _new(self.cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", self.all_fields.copy())
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


_accepted = _Construct(OrderAccepted)
_rejected = _Construct(OrderRejected)
_modified = _Construct(OrderModified)
_partially_filled = _Construct(OrderPartiallyFilled)
_filled = _Construct(OrderFilled)
_trade = _Construct(TradeExecuted)
_cancelled = _Construct(OrderCancelled)
_expired = _Construct(OrderExpired)


_NAMESPACE_BYTES = TRADE_NAMESPACE.bytes
_V5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V5_SET = (0x8000 << 48) | (5 << 76)
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def trade_id(aggressor_id: uuid.UUID, filled_before: int) -> uuid.UUID:
    """``uuid.uuid5(TRADE_NAMESPACE, f"{aggressor_id}:{filled_before}")``, without its
    argument handling (tested equal)."""
    digest = sha1(_NAMESPACE_BYTES + f"{aggressor_id}:{filled_before}".encode()).digest()
    value = _new(uuid.UUID)
    _set(value, "int", int.from_bytes(digest[:16]) & _V5_CLEAR | _V5_SET)
    _set(value, "is_safe", _SAFE_UNKNOWN)
    return value


def accepted(o: OrderState, at: datetime) -> OrderAccepted:
    spec = o.spec
    return _accepted.make({
        "order_id": o.order_id, "account": o.account, "site": o.site, "market": o.market,
        "side": o.side,
        "quantity_mwh": spec.quantity(o.quantity), "limit_price_eur_mwh": spec.price(o.price),
        "time_in_force": o.time_in_force, "delivery_start": o.delivery_start,
        "delivery_end": o.delivery_end, "client_order_id": o.client_order_id, "accepted_at": at,
    })


def rejected(
    order_id: uuid.UUID, site: str, market: str, account: str | None, reason: RejectReason,
    detail: str, at: datetime,
) -> OrderRejected:
    return _rejected.make({
        "order_id": order_id, "site": site, "market": market, "account": account,
        "stage": "matching",
        "reason": reason, "detail": detail, "rejected_at": at,
    })


def modified(o: OrderState, lost_priority: bool, at: datetime) -> OrderModified:
    spec = o.spec
    return _modified.make({
        "order_id": o.order_id, "account": o.account, "site": o.site, "market": o.market,
        "quantity_mwh": spec.quantity(o.quantity), "limit_price_eur_mwh": spec.price(o.price),
        "remaining_quantity_mwh": spec.quantity(o.remaining), "lost_priority": lost_priority,
        "modified_at": at,
    })


def fill(
    o: OrderState, trade: uuid.UUID, lots: int, price: Decimal, at: datetime
) -> OrderFilled | OrderPartiallyFilled:
    """The fill event of `o` after `lots` were added to its `filled`."""
    spec = o.spec
    build = _partially_filled if o.filled < o.quantity else _filled
    return build.make({
        "order_id": o.order_id, "account": o.account, "site": o.site, "market": o.market,
        "trade_id": trade,
        "side": o.side, "fill_quantity_mwh": spec.quantity(lots), "fill_price_eur_mwh": price,
        "filled_quantity_mwh": spec.quantity(o.filled),
        "remaining_quantity_mwh": spec.quantity(o.quantity - o.filled), "executed_at": at,
    })


def trade(
    trade: uuid.UUID, taker: OrderState, maker: OrderState, lots: int, price: Decimal,
    at: datetime,
) -> TradeExecuted:
    buy, sell = (taker, maker) if taker.side is Side.BUY else (maker, taker)
    return _trade.make({
        "trade_id": trade, "market": taker.market, "delivery_start": taker.delivery_start,
        "delivery_end": taker.delivery_end, "quantity_mwh": taker.spec.quantity(lots),
        "price_eur_mwh": price, "buy_order_id": buy.order_id, "sell_order_id": sell.order_id,
        "buy_account": buy.account, "sell_account": sell.account, "buy_site": buy.site,
        "sell_site": sell.site, "aggressor_side": taker.side, "price_rule": taker.spec.price_rule,
        "executed_at": at,
    })


def cancelled(o: OrderState, reason: CancelReason, at: datetime) -> OrderCancelled:
    return _cancelled.make({
        "order_id": o.order_id, "account": o.account, "site": o.site, "market": o.market,
        "remaining_quantity_mwh": o.spec.quantity(o.remaining), "reason": reason,
        "cancelled_at": at,
    })


def expired(o: OrderState, at: datetime) -> OrderExpired:
    return _expired.make({
        "order_id": o.order_id, "account": o.account, "site": o.site, "market": o.market,
        "remaining_quantity_mwh": o.spec.quantity(o.remaining), "expired_at": at,
    })
