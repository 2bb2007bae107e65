"""The pre-trade risk state of one site, folded from its events: `evolve(state, payload, now)`.

What it tracks: the latest SoC and temperature (newest device time wins, any device of the
site), the site's open orders (reserved by `decide` when approved, confirmed by
`OrderAccepted`, reduced by fills, released by cancel/expiry/matching rejection), filled energy
not yet delivered, the net position per market (BUY +, SELL -), the event times of recently
approved orders per market (the rate-limit window) and the kill switches.

The global kill switch arrives (broadcast) on every partition; the processor applies it to
every site state it holds and seeds new site states with it (`RiskState(site, global_kill=...)`).
"""

from __future__ import annotations

import uuid
from bisect import bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

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


@dataclass(frozen=True)
class Delivery:
    """Filled energy of one order, to be delivered in its delivery period."""

    side: Side
    quantity_mwh: Decimal
    delivery_start: datetime
    delivery_end: datetime


@dataclass(frozen=True)
class KillSwitch:
    engaged_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class RiskState:
    site: str
    soc_pct: Decimal | None = None
    soc_time: datetime | None = None
    temperature_c: Decimal | None = None
    temperature_time: datetime | None = None
    open_orders: Mapping[uuid.UUID, OpenOrder] = field(default_factory=dict)
    deliveries: tuple[Delivery, ...] = ()
    positions_mwh: Mapping[str, Decimal] = field(default_factory=dict)
    recent_orders: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)  # sorted
    site_kill: KillSwitch | None = None
    global_kill: KillSwitch | None = None

    def to_dict(self) -> dict[str, object]:
        from domain.risk.codec import state_to_dict

        return state_to_dict(self)

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> RiskState:
        from domain.risk.codec import state_from_dict

        return state_from_dict(data)


S = TypeVar("S", RiskState, OpenOrder)


def replace(obj: S, **changes: Any) -> S:
    """`dataclasses.replace` for these frozen dataclasses without ``__post_init__`` and
    ``init=False`` fields: a copy of the instance dict with `changes` (~5x faster)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__, **changes)
    return new


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
    if soc_time is not None and any(d.delivery_end <= soc_time for d in deliveries):
        deliveries = tuple(d for d in deliveries if d.delivery_end > soc_time)
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
    if order_id not in state.open_orders:
        return state
    return replace(state, open_orders={k: v for k, v in state.open_orders.items()
                                       if k != order_id})


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


def _with_order(state: RiskState, order_id: uuid.UUID, order: OpenOrder) -> RiskState:
    return replace(state, open_orders={**state.open_orders, order_id: order})


def _accepted(state: RiskState, e: OrderAccepted) -> RiskState:
    if e.order_id in state.open_orders:  # reserved by decide already
        return state
    return _with_order(state, e.order_id, OpenOrder(
        e.market, e.side, e.quantity_mwh, e.quantity_mwh, e.delivery_start, e.delivery_end))


def _filled(state: RiskState, e: OrderPartiallyFilled | OrderFilled) -> RiskState:
    order = state.open_orders.get(e.order_id)
    if order is not None and e.filled_quantity_mwh <= order.filled_mwh:
        return state  # a duplicate of a fill already applied
    sign = 1 if e.side is Side.BUY else -1
    positions = {**state.positions_mwh,
                 e.market: state.positions_mwh.get(e.market, Decimal(0))
                 + sign * e.fill_quantity_mwh}
    new = replace(state, positions_mwh=positions)
    if order is None:
        return new
    delivery = Delivery(e.side, e.fill_quantity_mwh, order.delivery_start, order.delivery_end)
    new = replace(new, deliveries=(*new.deliveries, delivery))
    if isinstance(e, OrderFilled) or e.remaining_quantity_mwh <= 0:
        return release(new, e.order_id)
    return _with_order(new, e.order_id, replace(
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
    return _with_order(state, e.order_id, replace(
        order, quantity_mwh=order.previous_quantity_mwh,
        remaining_mwh=max(order.remaining_mwh - raised, Decimal(0)), previous_quantity_mwh=None))


def _modified(state: RiskState, e: OrderModified) -> RiskState:
    order = state.open_orders.get(e.order_id)
    if order is None:
        return state
    return _with_order(state, e.order_id, replace(
        order, quantity_mwh=e.quantity_mwh, remaining_mwh=e.remaining_quantity_mwh,
        previous_quantity_mwh=None))
