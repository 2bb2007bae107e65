"""Order state of the matching engine, its read views and the JSON-safe snapshot rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.matching.spec import MarketSpec
from schemas.trading import Side, TimeInForce

BookKey = tuple[str, datetime]
"""(market, delivery_start): one book per delivery period."""


@dataclass(slots=True)
class OrderState:
    """An open order as the engine tracks it; prices in ticks, quantities in lots."""

    order_id: uuid.UUID
    client_order_id: str | None
    account: str
    site: str
    market: str
    side: Side
    time_in_force: TimeInForce
    delivery_start: datetime
    delivery_end: datetime
    spec: MarketSpec
    price: int
    quantity: int  # total (filled + open) after the latest modify
    filled: int
    priority: int  # engine-wide sequence; lower = earlier within a price level

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def book_key(self) -> BookKey:
        return (self.market, self.delivery_start)

    def view(self) -> OpenOrder:
        spec = self.spec
        return OpenOrder(
            order_id=self.order_id, client_order_id=self.client_order_id, account=self.account,
            site=self.site, market=self.market, side=self.side,
            time_in_force=self.time_in_force, delivery_start=self.delivery_start,
            delivery_end=self.delivery_end, limit_price_eur_mwh=spec.price(self.price),
            quantity_mwh=spec.quantity(self.quantity),
            filled_quantity_mwh=spec.quantity(self.filled),
            remaining_quantity_mwh=spec.quantity(self.remaining), priority=self.priority,
        )


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order (read view, also the row of the engine's snapshot)."""

    order_id: uuid.UUID
    client_order_id: str | None
    account: str
    site: str
    market: str
    side: Side
    time_in_force: TimeInForce
    delivery_start: datetime
    delivery_end: datetime
    limit_price_eur_mwh: Decimal
    quantity_mwh: Decimal
    filled_quantity_mwh: Decimal
    remaining_quantity_mwh: Decimal
    priority: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe row (UUIDs, datetimes and Decimals as strings)."""
        return {
            "order_id": str(self.order_id), "client_order_id": self.client_order_id,
            "account": self.account, "site": self.site, "market": self.market,
            "side": self.side.value, "time_in_force": self.time_in_force.value,
            "delivery_start": self.delivery_start.isoformat(),
            "delivery_end": self.delivery_end.isoformat(),
            "limit_price_eur_mwh": str(self.limit_price_eur_mwh),
            "quantity_mwh": str(self.quantity_mwh),
            "filled_quantity_mwh": str(self.filled_quantity_mwh),
            "remaining_quantity_mwh": str(self.remaining_quantity_mwh),
            "priority": self.priority,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> OpenOrder:
        client_order_id = row.get("client_order_id")
        return cls(
            order_id=uuid.UUID(str(row["order_id"])),
            client_order_id=None if client_order_id is None else str(client_order_id),
            account=str(row["account"]), site=str(row["site"]), market=str(row["market"]),
            side=Side(row["side"]), time_in_force=TimeInForce(row["time_in_force"]),
            delivery_start=_aware(row["delivery_start"]),
            delivery_end=_aware(row["delivery_end"]),
            limit_price_eur_mwh=Decimal(str(row["limit_price_eur_mwh"])),
            quantity_mwh=Decimal(str(row["quantity_mwh"])),
            filled_quantity_mwh=Decimal(str(row["filled_quantity_mwh"])),
            remaining_quantity_mwh=Decimal(str(row["remaining_quantity_mwh"])),
            priority=int(row["priority"]),
        )


def _aware(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive datetime in snapshot row: {value!r}")
    return parsed


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One aggregated price level."""

    price_eur_mwh: Decimal
    quantity_mwh: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class BookDepth:
    """Best levels of one book; bids highest first, asks lowest first."""

    market: str
    delivery_start: datetime
    bids: list[DepthLevel]
    asks: list[DepthLevel]
