"""Per-market trading rules and the exact Decimal <-> integer tick/lot conversion.

Prices (EUR/MWh) become integer *ticks* of `price_tick`, quantities (MWh) integer *lots* of
`quantity_step`; the book works on integers only. A price off the tick grid or a quantity off the
step grid is not rounded but rejected (`invalid_price_tick` / `invalid_quantity_step`).

Midpoint rounding: the midpoint of two limits in ticks is ``(buy + sell) / 2``; when that falls
on a half tick it is rounded half-to-even onto the tick grid (unbiased over many trades, and always
inside ``[sell, buy]`` because a half tick only occurs when the limits differ by at least a tick).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Literal

PriceRule = Literal["midpoint", "maker"]


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Trading rules of one market.

    `gate_closure_s`: seconds before `delivery_start` at which trading for that delivery period
    closes (submits at or after it are rejected, resting orders expire then).
    `price_rule`: ``"midpoint"`` of the two limits (the predecessor's rule) or ``"maker"`` (the
    resting order's price, as continuous exchanges do).
    """

    market: str
    price_tick: Decimal = Decimal("0.01")
    quantity_step: Decimal = Decimal("0.001")
    price_rule: PriceRule = "maker"
    gate_closure_s: int = 300
    self_trade_prevention: bool = True
    _gate: timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_gate", timedelta(seconds=self.gate_closure_s))
        if not self.price_tick.is_finite() or self.price_tick <= 0:
            raise ValueError(f"price_tick must be positive, got {self.price_tick}")
        if not self.quantity_step.is_finite() or self.quantity_step <= 0:
            raise ValueError(f"quantity_step must be positive, got {self.quantity_step}")
        if self.gate_closure_s < 0:
            raise ValueError(f"gate_closure_s must be >= 0, got {self.gate_closure_s}")

    def to_ticks(self, price_eur_mwh: Decimal) -> int | None:
        """Integer ticks of a price, or None when it is not on the tick grid."""
        return _units(price_eur_mwh, self.price_tick)

    def to_lots(self, quantity_mwh: Decimal) -> int | None:
        """Integer lots of a positive quantity, or None when off the step grid or not positive."""
        lots = _units(quantity_mwh, self.quantity_step)
        return lots if lots is not None and lots > 0 else None

    def price(self, ticks: int) -> Decimal:
        """EUR/MWh of `ticks` (exact)."""
        return Decimal(ticks) * self.price_tick

    def quantity(self, lots: int) -> Decimal:
        """MWh of `lots` (exact)."""
        return Decimal(lots) * self.quantity_step

    def trade_ticks(self, buy_ticks: int, sell_ticks: int, maker_ticks: int) -> int:
        """Trade price in ticks by this market's rule (see the module doc for the rounding)."""
        if self.price_rule == "maker":
            return maker_ticks
        return midpoint_ticks(buy_ticks, sell_ticks)

    def gate_closure(self, delivery_start: datetime) -> datetime:
        """When trading for the delivery period starting at `delivery_start` closes."""
        return delivery_start - self._gate


def midpoint_ticks(a: int, b: int) -> int:
    """``(a + b) / 2`` in ticks, a half tick rounded half-to-even."""
    total = a + b
    half, odd = divmod(total, 2)
    if not odd:
        return half
    return half if half % 2 == 0 else half + 1


def _units(value: Decimal, unit: Decimal) -> int | None:
    if not value.is_finite():
        return None
    try:  # exact: raises when the quotient needs more digits than the context precision
        units, rest = divmod(value, unit)
    except InvalidOperation:
        return None
    return int(units) if rest == 0 else None


DEFAULT_SPECS: Mapping[str, MarketSpec] = MappingProxyType({
    spec.market: spec
    for spec in (
        MarketSpec("EPEX_AT_INTRADAY_15MIN", price_rule="maker", gate_closure_s=300),
        MarketSpec("EPEX_DE_INTRADAY_15MIN", price_rule="maker", gate_closure_s=300),
        # The predecessor's internal exchange: midpoint of the limits, no gate closure before
        # delivery starts.
        MarketSpec("INTERNAL", price_rule="midpoint", gate_closure_s=0),
    )
})
"""Markets the engine trades by default."""


def spec_for(market: str, specs: Mapping[str, MarketSpec] = DEFAULT_SPECS) -> MarketSpec | None:
    """The spec of `market`, or None for an unknown market (-> reject ``unknown_market``)."""
    return specs.get(market)
