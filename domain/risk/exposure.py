"""What a site has already committed, as the rules count it.

- open orders: their remaining quantity is reserved in full (they may still fill);
- filled energy not yet delivered: the part of its delivery period after the latest SoC
  reading (the reading already reflects the rest), assuming constant power over the period.

Only the same side counts against a new order: an opposite order may never fill, so it frees
no headroom (conservative).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain.risk.rules import Block
from domain.risk.state import Delivery, RiskState
from schemas.trading import Side

_US = timedelta(microseconds=1)


def open_mwh(state: RiskState, side: Side, market: str | None = None) -> Decimal:
    """Remaining quantity of the open orders on `side` (in `market`, or all markets)."""
    return sum((o.remaining_mwh for o in state.open_orders.values()
                if o.side is side and (market is None or o.market == market)), Decimal(0))


def undelivered_mwh(delivery: Delivery, soc_time: datetime | None) -> Decimal:
    """The part of a filled delivery not yet reflected in a SoC reading taken at `soc_time`."""
    if soc_time is None or soc_time <= delivery.delivery_start:
        return delivery.quantity_mwh
    if soc_time >= delivery.delivery_end:
        return Decimal(0)
    left = (delivery.delivery_end - soc_time) // _US
    total = (delivery.delivery_end - delivery.delivery_start) // _US
    return delivery.quantity_mwh * left / total


def committed_mwh(state: RiskState, side: Side) -> Decimal:
    """Energy the site must still buy (BUY) or sell (SELL): open orders plus undelivered
    fills on that side."""
    delivering = sum((undelivered_mwh(d, state.soc_time) for d in state.deliveries
                      if d.side is side), Decimal(0))
    return open_mwh(state, side) + delivering


def blocks(state: RiskState) -> list[Block]:
    """Every commitment of the site as power over its delivery period (power rule)."""
    out = [Block(o.side, o.remaining_mwh, o.delivery_start, o.delivery_end)
           for o in state.open_orders.values()]
    out += [Block(d.side, d.quantity_mwh, d.delivery_start, d.delivery_end)
            for d in state.deliveries]
    return out
