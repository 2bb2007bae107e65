"""What a site has already committed, as the rules count it.

- open orders: their remaining quantity is reserved in full (they may still fill);
- filled energy not yet delivered: the part of its delivery period after the latest SoC
  reading (the reading already reflects the rest), assuming constant power over the period.

Only the same side counts against a new order: an opposite order may never fill, so it frees
no headroom (conservative).

Everything here reads the state's running totals (open orders per side, market and period;
deliveries per side and period), so a check costs the same however many orders are open.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from domain.risk.rules import Block
from domain.risk.state import Delivery, Period, RiskState
from schemas.trading import Side

_US = timedelta(microseconds=1)
_ZERO = Decimal(0)


def open_mwh(state: RiskState, side: Side, market: str | None = None) -> Decimal:
    """Remaining quantity of the open orders on `side` (in `market`, or all markets)."""
    if market is None:
        return state.totals.by_side.get(side, _ZERO)
    return state.totals.by_market.get((side, market), _ZERO)


def undelivered_mwh(delivery: Delivery, soc_time: datetime | None) -> Decimal:
    """The part of a filled delivery not yet reflected in a SoC reading taken at `soc_time`."""
    return _undelivered(delivery.quantity_mwh, delivery.delivery_start, delivery.delivery_end,
                        soc_time)


def _undelivered(quantity_mwh: Decimal, start: datetime, end: datetime,
                 soc_time: datetime | None) -> Decimal:
    if soc_time is None or soc_time <= start:
        return quantity_mwh
    if soc_time >= end:
        return _ZERO
    left = (end - soc_time) // _US
    total = (end - start) // _US
    return quantity_mwh * left / total


def delivering_mwh(state: RiskState, side: Side) -> Decimal:
    """Filled energy on `side` not yet reflected in the latest SoC reading."""
    soc_time = state.soc_time
    return sum((_undelivered(q, p.delivery_start, p.delivery_end, soc_time)
                for p, q in state.deliveries.items() if p.side is side), _ZERO)


def committed_mwh(state: RiskState, side: Side) -> Decimal:
    """Energy the site must still buy (BUY) or sell (SELL): open orders plus undelivered
    fills on that side."""
    return open_mwh(state, side) + delivering_mwh(state, side)


def blocks(state: RiskState) -> list[Block]:
    """Every commitment of the site as power over its delivery period (power rule): one block
    per side and period, open remaining plus filled energy."""
    energy: dict[Period, Decimal] = dict(state.totals.by_period)
    for p, q in state.deliveries.items():
        energy[p] = energy.get(p, _ZERO) + q
    return [Block(p.side, q, p.delivery_start, p.delivery_end) for p, q in energy.items()]
