"""The pre-trade risk state of one site, folded from its events: `evolve(state, payload, now)`.

What it tracks: the latest SoC and temperature (newest device time wins, any device of the
site), the site's open orders (reserved by `decide` when approved, confirmed by
`OrderAccepted`, reduced by fills, released by cancel/expiry/matching rejection), filled energy
not yet delivered (summed per side and delivery period), the net position per market (BUY +,
SELL -), the event times of recently approved orders per market (the rate-limit window) and
the kill switches.

Running totals of the open orders (remaining MWh per side, per side and market, per side and
delivery period) are kept beside them, so the rules never re-sum the open orders. They are
derived data: every change of `open_orders` goes through `put_order`, which updates them, and
the constructor recomputes them (`restore` in the codec builds states that way). They take no
part in ``==``; `totals_of(state)` recomputes them for checks.

The global kill switch arrives (broadcast) on every partition; the processor applies it to
every site state it holds and seeds new site states with it (`RiskState(site, global_kill=...)`).
"""

from __future__ import annotations

import uuid
from bisect import bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from domain.risk.config import RATE_WINDOW_S
from schemas.base import Payload
from schemas.telemetry import TelemetryReceived
from schemas.trading import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    SetKillSwitch,
    Side,
)

_ZERO = Decimal(0)


class Period(NamedTuple):
    """One side of one delivery period: what deliveries and period totals are keyed by."""

    side: Side
    delivery_start: datetime
    delivery_end: datetime


@dataclass(frozen=True)
class OpenOrder:
    """An order of the site that may still trade; its remaining quantity is reserved."""

    market: str
    side: Side
    quantity_mwh: Decimal  # total: filled + remaining
    remaining_mwh: Decimal
    delivery_start: datetime
    delivery_end: datetime
    previous_quantity_mwh: Decimal | None = None  # a raise awaiting the matching engine

    @property
    def filled_mwh(self) -> Decimal:
        return self.quantity_mwh - self.remaining_mwh

    @property
    def period(self) -> Period:
        return Period(self.side, self.delivery_start, self.delivery_end)


@dataclass(frozen=True)
class Delivery:
    """Filled energy on one side, to be delivered in its delivery period."""

    side: Side
    quantity_mwh: Decimal
    delivery_start: datetime
    delivery_end: datetime


@dataclass(frozen=True)
class KillSwitch:
    engaged_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Totals:
    """Remaining MWh of the open orders, summed. Entries that sum to zero are absent."""

    by_side: Mapping[Side, Decimal] = field(default_factory=dict)
    by_market: Mapping[tuple[Side, str], Decimal] = field(default_factory=dict)
    by_period: Mapping[Period, Decimal] = field(default_factory=dict)

    def plus(self, order: OpenOrder, sign: int) -> Totals:
        """These totals with `order`'s remaining quantity added (sign 1) or removed (-1)."""
        qty = order.remaining_mwh if sign > 0 else -order.remaining_mwh
        if not qty:
            return self
        return Totals(_add(self.by_side, order.side, qty),
                      _add(self.by_market, (order.side, order.market), qty),
                      _add(self.by_period, order.period, qty))


K = TypeVar("K")


def _add(totals: Mapping[K, Decimal], key: K, qty: Decimal) -> dict[K, Decimal]:
    new = dict(totals)
    value = new.get(key, _ZERO) + qty
    if value:
        new[key] = value
    else:
        new.pop(key, None)
    return new


def totals_of(orders: Iterable[OpenOrder]) -> Totals:
    """The totals of `orders`, summed afresh."""
    by_side: dict[Side, Decimal] = {}
    by_market: dict[tuple[Side, str], Decimal] = {}
    by_period: dict[Period, Decimal] = {}
    for o in orders:
        q = o.remaining_mwh
        by_side[o.side] = by_side.get(o.side, _ZERO) + q
        by_market[(o.side, o.market)] = by_market.get((o.side, o.market), _ZERO) + q
        by_period[o.period] = by_period.get(o.period, _ZERO) + q
    return Totals({k: v for k, v in by_side.items() if v},
                  {k: v for k, v in by_market.items() if v},
                  {k: v for k, v in by_period.items() if v})


@dataclass(frozen=True)
class RiskState:
    site: str
    soc_pct: Decimal | None = None
    soc_time: datetime | None = None
    temperature_c: Decimal | None = None
    temperature_time: datetime | None = None
    open_orders: Mapping[uuid.UUID, OpenOrder] = field(default_factory=dict)
    # filled MWh not yet delivered, per side and delivery period (sums of the fills)
    deliveries: Mapping[Period, Decimal] = field(default_factory=dict)
    positions_mwh: Mapping[str, Decimal] = field(default_factory=dict)
    recent_orders: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)  # sorted
    site_kill: KillSwitch | None = None
    global_kill: KillSwitch | None = None
    totals: Totals = field(init=False, compare=False, repr=False)  # of open_orders

    def __post_init__(self) -> None:
        object.__setattr__(self, "totals", totals_of(self.open_orders.values()))

    def to_dict(self) -> dict[str, object]:
        from domain.risk.codec import state_to_dict

        return state_to_dict(self)

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> RiskState:
        from domain.risk.codec import state_from_dict

        return state_from_dict(data)


S = TypeVar("S", RiskState, OpenOrder)


def replace(obj: S, **changes: Any) -> S:
    """`dataclasses.replace` for these frozen dataclasses, without running ``__post_init__``:
    a copy of the instance dict with `changes` (~5x faster). The totals of a `RiskState` are
    copied as they are: change `open_orders` only through `put_order`."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new


def put_order(state: RiskState, order_id: uuid.UUID, order: OpenOrder | None) -> RiskState:
    """`state` with `order_id` open as `order`, or released (None); totals updated."""
    old = state.open_orders.get(order_id)
    if old is None and order is None:
        return state
    totals = state.totals
    orders = dict(state.open_orders)
    if old is not None:
        totals = totals.plus(old, -1)
    if order is None:
        del orders[order_id]
    else:
        orders[order_id] = order
        totals = totals.plus(order, 1)
    return replace(state, open_orders=orders, totals=totals)


def evolve(state: RiskState, payload: Payload, now: datetime) -> RiskState:
    """`state` after `payload` (an event or a `SetKillSwitch`); other payloads change nothing.

    `now` is the event time of the message; it bounds the rate-limit bookkeeping.
    """
    if isinstance(payload, SetKillSwitch):
        new = _kill_switch(state, payload)
    elif getattr(payload, "site", None) != state.site:
        new = state
    elif isinstance(payload, TelemetryReceived):
        new = _telemetry(state, payload)
    elif isinstance(payload, OrderAccepted):
        new = _accepted(state, payload)
    elif isinstance(payload, OrderPartiallyFilled | OrderFilled):
        new = _filled(state, payload)
    elif isinstance(payload, OrderCancelled | OrderExpired):
        new = release(state, payload.order_id)
    elif isinstance(payload, OrderRejected):
        new = _rejected(state, payload)
    elif isinstance(payload, OrderModified):
        new = _modified(state, payload)
    else:
        new = state
    return prune(new, now)


def prune(state: RiskState, now: datetime) -> RiskState:
    """Drop rate-window times that left the window before `now`, and deliveries over before
    the latest SoC reading (the reading already reflects them)."""
    horizon = now - timedelta(seconds=RATE_WINDOW_S)
    recent = state.recent_orders
    if any(times[0] <= horizon for times in recent.values()):
        recent = {m: kept for m, times in recent.items()
                  if (kept := times[bisect_right(times, horizon):])}
    deliveries = state.deliveries
    soc_time = state.soc_time
    if soc_time is not None and any(p.delivery_end <= soc_time for p in deliveries):
        deliveries = {p: q for p, q in deliveries.items() if p.delivery_end > soc_time}
    if recent is state.recent_orders and deliveries is state.deliveries:
        return state
    return replace(state, recent_orders=recent, deliveries=deliveries)


def note_order(state: RiskState, market: str, at: datetime) -> RiskState:
    """Record an approved order at event time `at` in the market's rate window (sorted)."""
    times = list(state.recent_orders.get(market, ()))
    insort(times, at)
    return replace(state, recent_orders={**state.recent_orders, market: tuple(times)})


def release(state: RiskState, order_id: uuid.UUID) -> RiskState:
    """The order is no longer open: its remaining quantity is no longer reserved."""
    return put_order(state, order_id, None)


def delivery_list(state: RiskState) -> list[Delivery]:
    """The undelivered filled energy as one `Delivery` per side and delivery period."""
    return [Delivery(p.side, q, p.delivery_start, p.delivery_end)
            for p, q in state.deliveries.items()]


def _kill_switch(state: RiskState, cmd: SetKillSwitch) -> RiskState:
    switch = KillSwitch(cmd.requested_at, cmd.reason) if cmd.engaged else None
    if cmd.site is None:
        return replace(state, global_kill=switch)
    if cmd.site == state.site:
        return replace(state, site_kill=switch)
    return state


def _telemetry(state: RiskState, r: TelemetryReceived) -> RiskState:
    new = state
    if r.soc_pct is not None and (state.soc_time is None or r.device_time > state.soc_time):
        new = replace(new, soc_pct=Decimal(str(r.soc_pct)), soc_time=r.device_time)
    if r.temperature_c is not None and (state.temperature_time is None
                                        or r.device_time > state.temperature_time):
        new = replace(new, temperature_c=Decimal(str(r.temperature_c)),
                      temperature_time=r.device_time)
    return new


def _accepted(state: RiskState, e: OrderAccepted) -> RiskState:
    if e.order_id in state.open_orders:  # reserved by decide already
        return state
    return put_order(state, e.order_id, OpenOrder(
        e.market, e.side, e.quantity_mwh, e.quantity_mwh, e.delivery_start, e.delivery_end))


def _filled(state: RiskState, e: OrderPartiallyFilled | OrderFilled) -> RiskState:
    order = state.open_orders.get(e.order_id)
    if order is not None and e.filled_quantity_mwh <= order.filled_mwh:
        return state  # a duplicate of a fill already applied
    sign = 1 if e.side is Side.BUY else -1
    positions = {**state.positions_mwh,
                 e.market: state.positions_mwh.get(e.market, _ZERO)
                 + sign * e.fill_quantity_mwh}
    new = replace(state, positions_mwh=positions)
    if order is None:
        return new
    period = Period(e.side, order.delivery_start, order.delivery_end)
    new = replace(new, deliveries={**new.deliveries,
                                   period: new.deliveries.get(period, _ZERO)
                                   + e.fill_quantity_mwh})
    if isinstance(e, OrderFilled) or e.remaining_quantity_mwh <= 0:
        return release(new, e.order_id)
    return put_order(new, e.order_id, replace(
        order, quantity_mwh=e.filled_quantity_mwh + e.remaining_quantity_mwh,
        remaining_mwh=e.remaining_quantity_mwh))


def _rejected(state: RiskState, e: OrderRejected) -> RiskState:
    """A matching rejection releases the reservation; of a pending raise, only the raise."""
    order = state.open_orders.get(e.order_id)
    if e.stage != "matching" or order is None:
        return state
    if order.previous_quantity_mwh is None:
        return release(state, e.order_id)
    raised = order.quantity_mwh - order.previous_quantity_mwh
    return put_order(state, e.order_id, replace(
        order, quantity_mwh=order.previous_quantity_mwh,
        remaining_mwh=max(order.remaining_mwh - raised, _ZERO), previous_quantity_mwh=None))


def _modified(state: RiskState, e: OrderModified) -> RiskState:
    order = state.open_orders.get(e.order_id)
    if order is None:
        return state
    return put_order(state, e.order_id, replace(
        order, quantity_mwh=e.quantity_mwh, remaining_mwh=e.remaining_quantity_mwh,
        previous_quantity_mwh=None))
