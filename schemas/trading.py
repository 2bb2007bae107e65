"""Trading contracts: order commands, order lifecycle events, trades (seed 000, sections 2-4).

Quantities are MWh, prices EUR/MWh, both `Decimal` (exact; JSON strings on the wire, e.g.
``"0.5"``, ``"39.5"``) — never binary floats in matching. Side BUY charges the battery (energy
bought), SELL discharges it (energy sold).

Flow: commands on ``trading.order-commands.v1`` (key site) -> pre-trade risk (keyed by site)
-> accepted commands on ``trading.matching-inbox.v1`` (key market) -> matching engine ->
lifecycle events on ``trading.order-events.v1`` (key site) and trades on ``trading.trades.v1``
(key market).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Payload, UtcDatetime
from schemas.envelope import register


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class TimeInForce(StrEnum):
    GTC = "GTC"  # good till cancelled (or until gate closure of its delivery period)
    IOC = "IOC"  # immediate or cancel: fill what crosses now, cancel the rest
    FOK = "FOK"  # fill or kill: fill completely now or not at all


Quantity = Decimal
Price = Decimal

RejectReason = Literal[
    # pre-trade risk
    "soc_above_max", "soc_below_min", "telemetry_missing", "telemetry_stale",
    "rate_limited", "temperature_halt", "power_above_max", "position_limit_market",
    "position_limit_site", "kill_switch_site", "kill_switch_global", "unknown_site",
    # matching
    "gate_closed", "unknown_market", "invalid_price_tick", "invalid_quantity_step",
    "fok_not_fillable", "unknown_order", "duplicate_order", "order_not_open",
    "quantity_below_filled",  # ModifyOrder: new total quantity <= the quantity already filled
]


@register
class SubmitOrder(Payload):
    """Command: place a limit order for one delivery period. Key: `site`."""

    kind = "command"
    order_id: uuid.UUID
    client_order_id: str | None = Field(default=None, max_length=64)
    account: str = Field(min_length=1, description="Trading account; self-trade prevention scope.")
    site: str = Field(min_length=1, description="The battery site whose energy is traded.")
    market: str = Field(min_length=1, description="e.g. EPEX_AT_INTRADAY_15MIN")
    side: Side
    quantity_mwh: Quantity = Field(gt=0)
    limit_price_eur_mwh: Price
    time_in_force: TimeInForce = TimeInForce.GTC
    delivery_start: UtcDatetime
    delivery_end: UtcDatetime
    submitted_at: UtcDatetime = Field(description="Event time of the command.")

    @model_validator(mode="after")
    def _period(self) -> SubmitOrder:
        if self.delivery_end <= self.delivery_start:
            raise ValueError("delivery_end must be after delivery_start")
        return self

    @property
    def power_mw(self) -> Decimal:
        """Mean power over the delivery period: MWh / h."""
        hours = Decimal((self.delivery_end - self.delivery_start).total_seconds()) / 3600
        return self.quantity_mwh / hours

    def partition_key(self) -> str:
        return self.site


@register
class CancelOrder(Payload):
    """Command: cancel the open remainder of an order. Key: `site`."""

    kind = "command"
    order_id: uuid.UUID
    site: str
    market: str
    requested_at: UtcDatetime

    def partition_key(self) -> str:
        return self.site


@register
class ModifyOrder(Payload):
    """Command: change quantity and/or limit price. Raising the quantity or changing the price
    loses time priority. `new_quantity_mwh` is the new total (filled + open). Key: `site`."""

    kind = "command"
    order_id: uuid.UUID
    site: str
    market: str
    new_quantity_mwh: Quantity | None = Field(default=None, gt=0)
    new_limit_price_eur_mwh: Price | None = None
    requested_at: UtcDatetime

    def partition_key(self) -> str:
        return self.site


@register
class SetKillSwitch(Payload):
    """Command: engage/release the kill switch of one site (`site`) or, with site None,
    globally (published to every partition of the command topic). Key: site or ``*``."""

    kind = "command"
    site: str | None = None
    engaged: bool
    reason: str = ""
    requested_at: UtcDatetime

    def partition_key(self) -> str:
        return self.site or "*"


class _OrderEvent(Payload):
    order_id: uuid.UUID
    account: str
    site: str
    market: str

    def partition_key(self) -> str:
        return self.site


@register
class OrderAccepted(_OrderEvent):
    """The order passed risk and entered the book (or is being matched immediately)."""

    side: Side
    quantity_mwh: Quantity
    limit_price_eur_mwh: Price
    time_in_force: TimeInForce
    delivery_start: UtcDatetime
    delivery_end: UtcDatetime
    client_order_id: str | None = None
    accepted_at: UtcDatetime


@register
class OrderRejected(Payload):
    """An order command was refused; `reason` is machine-readable, `detail` human-readable."""

    order_id: uuid.UUID
    site: str
    market: str
    account: str | None = None
    stage: Literal["risk", "matching"]
    reason: RejectReason
    detail: str = ""
    rejected_at: UtcDatetime

    def partition_key(self) -> str:
        return self.site


@register
class OrderModified(_OrderEvent):
    """Quantity and/or price changed; `lost_priority` when it moved to the back of its level."""

    quantity_mwh: Quantity
    limit_price_eur_mwh: Price
    remaining_quantity_mwh: Quantity
    lost_priority: bool
    modified_at: UtcDatetime


class _Fill(_OrderEvent):
    trade_id: uuid.UUID
    side: Side
    fill_quantity_mwh: Quantity
    fill_price_eur_mwh: Price
    filled_quantity_mwh: Quantity = Field(description="Cumulative filled quantity.")
    remaining_quantity_mwh: Quantity
    executed_at: UtcDatetime


@register
class OrderPartiallyFilled(_Fill):
    """Part of the order traded; the rest stays open."""


@register
class OrderFilled(_Fill):
    """The order traded completely."""


@register
class OrderCancelled(_OrderEvent):
    """The open remainder was cancelled (by request, IOC remainder, self-trade prevention,
    kill switch)."""

    remaining_quantity_mwh: Quantity
    reason: Literal["requested", "ioc_remainder", "self_trade_prevention", "kill_switch"]
    cancelled_at: UtcDatetime


@register
class OrderExpired(_OrderEvent):
    """A resting order reached the gate closure of its delivery period."""

    remaining_quantity_mwh: Quantity
    expired_at: UtcDatetime


@register
class TradeExecuted(Payload):
    """Two orders matched. Key: `market`."""

    trade_id: uuid.UUID
    market: str
    delivery_start: UtcDatetime
    delivery_end: UtcDatetime
    quantity_mwh: Quantity
    price_eur_mwh: Price
    buy_order_id: uuid.UUID
    sell_order_id: uuid.UUID
    buy_account: str
    sell_account: str
    buy_site: str
    sell_site: str
    aggressor_side: Side
    price_rule: Literal["midpoint", "maker"]
    executed_at: UtcDatetime

    def partition_key(self) -> str:
        return self.market


ORDER_EVENTS: tuple[type[Payload], ...] = (
    OrderAccepted, OrderRejected, OrderModified, OrderPartiallyFilled, OrderFilled,
    OrderCancelled, OrderExpired,
)
ORDER_COMMANDS: tuple[type[Payload], ...] = (SubmitOrder, CancelOrder, ModifyOrder, SetKillSwitch)
