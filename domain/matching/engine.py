"""The matching engine: decide (`handle`) and evolve (`apply`) over one book per delivery period.

``handle(command, now)`` returns the events of one command, in order:

* ``SubmitOrder``: ``OrderRejected`` (duplicate_order, unknown_market, gate_closed,
  invalid_price_tick, invalid_quantity_step, fok_not_fillable: a FOK that cannot fill completely
  is rejected without ``OrderAccepted`` and without trades), or ``OrderAccepted``, then per match
  ``TradeExecuted``, the maker's and the taker's fill (``OrderPartiallyFilled``/``OrderFilled``),
  then for an IOC remainder ``OrderCancelled(ioc_remainder)``; a GTC remainder rests.
* ``CancelOrder``: ``OrderCancelled(requested)`` or ``OrderRejected`` (unknown_order: never seen
  or another site's/market's; order_not_open: filled, cancelled, expired or rejected).
* ``ModifyOrder``: ``OrderModified`` (raising the quantity or changing the price loses time
  priority, lowering keeps it; a new price that crosses matches at once, the order being the
  aggressor) or ``OrderRejected`` (unknown_order, order_not_open, invalid_price_tick,
  invalid_quantity_step, quantity_below_filled).
* ``SetKillSwitch`` (engaged): ``OrderCancelled(kill_switch)`` for the site's (or all) orders.

Every call first expires the resting orders whose gate closure is at or before `now`
(``OrderExpired``, see `expire`).

Self-trade prevention (per market, on by default) is *cancel resting*: a resting order of the
incoming order's account is cancelled (``OrderCancelled(self_trade_prevention)``) instead of
trading, and the incoming order goes on matching behind it; a FOK counts only other accounts'
liquidity. Trade prices: see `domain.matching.spec` (maker price, or midpoint rounded
half-to-even onto the tick). Trade ids: `domain.matching.events.trade_id`.

``apply(event)`` folds the same events over an engine: replaying everything `handle` emitted
rebuilds the same resting orders, quantities and priorities (the taker is placed in its book on
``OrderAccepted``; its fills and an IOC cancel then take it out again). ``snapshot``/``restore``
keep the resting orders as JSON-safe rows keyed by order id; ids of *closed* orders are not part
of the snapshot, so after a restore duplicate detection only covers resting orders and orders
seen since.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from domain.matching import events as ev
from domain.matching.book import BUY, SELL, Fill, OrderBook
from domain.matching.orders import BookDepth, BookKey, DepthLevel, OpenOrder, OrderState
from domain.matching.spec import DEFAULT_SPECS, MarketSpec
from schemas.base import Payload
from schemas.trading import (
    CancelOrder,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    RejectReason,
    SetKillSwitch,
    Side,
    SubmitOrder,
    TimeInForce,
)


class MatchingEngine:
    """Price-time priority matching of limit orders, one book per (market, delivery_start)."""

    def __init__(self, specs: Mapping[str, MarketSpec] = DEFAULT_SPECS) -> None:
        self._specs = specs
        self._reset()

    def _reset(self) -> None:
        self._books: dict[BookKey, OrderBook[int]] = {}
        self._orders: dict[uuid.UUID, OrderState] = {}  # open (resting) orders
        # the same orders by book id: their priority, unique per placement (a modify that loses
        # priority re-enters the book under a new one, as `OrderBook` requires)
        self._resting: dict[int, OrderState] = {}
        self._seen: set[uuid.UUID] = set()
        self._closures: list[tuple[datetime, str, datetime]] = []  # heap of gate closures
        self._priority = 0
        self._fills: list[Fill[int]] = []

    @classmethod
    def from_events(
        cls, events: Iterable[Payload], specs: Mapping[str, MarketSpec] = DEFAULT_SPECS
    ) -> MatchingEngine:
        """Fold `events` over a fresh engine."""
        engine = cls(specs)
        for event in events:
            engine.apply(event)
        return engine

    # -- decide ----------------------------------------------------------------------------

    def handle(self, command: Payload, now: datetime) -> list[Payload]:
        """The events `command` causes at event time `now` (aware); other payloads -> []."""
        now = _utc(now)
        out: list[Payload] = []
        if self._closures and self._closures[0][0] <= now:
            out.extend(self.expire(now))
        if isinstance(command, SubmitOrder):
            self._submit(command, now, out)
        elif isinstance(command, CancelOrder):
            self._cancel(command, now, out)
        elif isinstance(command, ModifyOrder):
            self._modify(command, now, out)
        elif isinstance(command, SetKillSwitch) and command.engaged:
            out.extend(self.cancel_all(now, site=command.site, reason="kill_switch"))
        return out

    def expire(self, now: datetime) -> list[OrderExpired]:
        """Expire every resting order whose gate closure is at or before `now` (by book, then
        priority) and drop those books."""
        now = _utc(now)
        out: list[OrderExpired] = []
        while self._closures and self._closures[0][0] <= now:
            _, market, start = heapq.heappop(self._closures)
            book = self._books.pop((market, start), None)
            if book is None:
                continue
            states = [self._resting.pop(bid) for s in (BUY, SELL) for bid, _ in book.orders(s)]
            for state in states:
                del self._orders[state.order_id]
            states.sort(key=_by_priority)
            out.extend(ev.expired(state, now) for state in states)
        return out

    def cancel_all(
        self, now: datetime, *, site: str | None = None, reason: ev.CancelReason = "kill_switch"
    ) -> list[OrderCancelled]:
        """Cancel every resting order (of `site`, or all), in priority order."""
        now = _utc(now)
        states = sorted(
            (s for s in self._orders.values() if site is None or s.site == site),
            key=_by_priority,
        )
        for state in states:
            self._unrest(state)
        return [ev.cancelled(state, reason, now) for state in states]

    def _submit(self, cmd: SubmitOrder, now: datetime, out: list[Payload]) -> None:
        oid = cmd.order_id

        def reject(reason: RejectReason, detail: str) -> None:
            out.append(ev.rejected(oid, cmd.site, cmd.market, cmd.account, reason, detail, now))

        if oid in self._seen:
            return reject("duplicate_order", "order id already used")
        self._seen.add(oid)
        spec = self._specs.get(cmd.market)
        if spec is None:
            return reject("unknown_market", f"no market {cmd.market}")
        if now >= spec.gate_closure(cmd.delivery_start):
            return reject("gate_closed", f"gate closed at {spec.gate_closure(cmd.delivery_start)}")
        price = spec.to_ticks(cmd.limit_price_eur_mwh)
        if price is None:
            return reject("invalid_price_tick", f"price not on {spec.price_tick}")
        lots = spec.to_lots(cmd.quantity_mwh)
        if lots is None:
            return reject("invalid_quantity_step", f"quantity not on {spec.quantity_step}")
        side = BUY if cmd.side is Side.BUY else SELL
        key = (cmd.market, cmd.delivery_start)
        book = self._books.get(key)
        if cmd.time_in_force is TimeInForce.FOK and (
            book is None
            or not book.fillable(side, price, lots, cmd.account, spec.self_trade_prevention)
        ):
            return reject("fok_not_fillable", "not enough crossing liquidity")
        if book is None:
            book = self._new_book(key, spec)
        state = OrderState(
            oid, cmd.client_order_id, cmd.account, cmd.site, cmd.market, cmd.side,
            cmd.time_in_force, cmd.delivery_start, cmd.delivery_end, spec, price, lots, 0,
            self._next_priority(),
        )
        self._orders[oid] = state
        out.append(ev.accepted(state, now))
        self._take(state, side, book, out, now)
        self._rest_or_close(state, side, book, out, now)

    def _take(
        self, taker: OrderState, side: int, book: OrderBook[int], out: list[Payload],
        now: datetime,
    ) -> None:
        fills = self._fills
        fills.clear()
        spec = taker.spec
        book.match(side, taker.price, taker.remaining, taker.account,
                   spec.self_trade_prevention, fills)
        orders = self._orders
        resting = self._resting
        for book_id, lots in fills:
            maker = resting[book_id]
            if not lots:
                del orders[maker.order_id], resting[book_id]
                out.append(ev.cancelled(maker, "self_trade_prevention", now))
                continue
            if side == BUY:
                ticks = spec.trade_ticks(taker.price, maker.price, maker.price)
            else:
                ticks = spec.trade_ticks(maker.price, taker.price, maker.price)
            price = spec.price(ticks)
            trade_id = ev.trade_id(taker.order_id, taker.filled)
            taker.filled += lots
            maker.filled += lots
            out.append(ev.trade(trade_id, taker, maker, lots, price, now))
            out.append(ev.fill(maker, trade_id, lots, price, now))
            out.append(ev.fill(taker, trade_id, lots, price, now))
            if maker.filled == maker.quantity:
                del orders[maker.order_id], resting[book_id]
        fills.clear()

    def _rest_or_close(
        self, state: OrderState, side: int, book: OrderBook[int], out: list[Payload],
        now: datetime,
    ) -> None:
        remaining = state.remaining
        if not remaining:
            del self._orders[state.order_id]
        elif state.time_in_force is TimeInForce.GTC:
            book.add(state.priority, side, state.price, remaining, state.account)
            self._resting[state.priority] = state
        else:  # IOC (a FOK that passed `fillable` always fills completely)
            del self._orders[state.order_id]
            out.append(ev.cancelled(state, "ioc_remainder", now))

    def _open_order(
        self, cmd: CancelOrder | ModifyOrder, now: datetime, out: list[Payload]
    ) -> OrderState | None:
        state = self._orders.get(cmd.order_id)
        if state is not None and state.site == cmd.site and state.market == cmd.market:
            return state
        known = state is None and cmd.order_id in self._seen
        reason: RejectReason = "order_not_open" if known else "unknown_order"
        out.append(ev.rejected(cmd.order_id, cmd.site, cmd.market, None, reason, "", now))
        return None

    def _cancel(self, cmd: CancelOrder, now: datetime, out: list[Payload]) -> None:
        state = self._open_order(cmd, now, out)
        if state is None:
            return
        self._unrest(state)
        out.append(ev.cancelled(state, "requested", now))

    def _modify(self, cmd: ModifyOrder, now: datetime, out: list[Payload]) -> None:
        state = self._open_order(cmd, now, out)
        if state is None:
            return

        def reject(reason: RejectReason, detail: str) -> None:
            out.append(ev.rejected(
                state.order_id, state.site, state.market, state.account, reason, detail, now))

        spec = state.spec
        price: int | None = state.price
        if cmd.new_limit_price_eur_mwh is not None:
            price = spec.to_ticks(cmd.new_limit_price_eur_mwh)
        if price is None:
            return reject("invalid_price_tick", f"price not on {spec.price_tick}")
        quantity: int | None = state.quantity
        if cmd.new_quantity_mwh is not None:
            quantity = spec.to_lots(cmd.new_quantity_mwh)
        if quantity is None:
            return reject("invalid_quantity_step", f"quantity not on {spec.quantity_step}")
        if quantity <= state.filled:
            return reject("quantity_below_filled", f"{spec.quantity(state.filled)} MWh filled")
        book = self._books[state.book_key]
        if price == state.price and quantity <= state.quantity:
            if quantity < state.quantity:
                book.reduce(state.priority, state.quantity - quantity)
                state.quantity = quantity
            out.append(ev.modified(state, False, now))
            return
        book.remove(state.priority)
        del self._resting[state.priority]
        state.price, state.quantity, state.priority = price, quantity, self._next_priority()
        out.append(ev.modified(state, True, now))
        side = BUY if state.side is Side.BUY else SELL
        self._take(state, side, book, out, now)
        self._rest_or_close(state, side, book, out, now)

    # -- evolve ----------------------------------------------------------------------------

    def apply(self, event: Payload) -> None:
        """Evolve the state by one event `handle` emitted; other payloads are ignored."""
        if isinstance(event, (OrderPartiallyFilled, OrderFilled)):
            state = self._orders[event.order_id]
            lots = _lots(state.spec, event.fill_quantity_mwh)
            state.filled += lots
            self._books[state.book_key].reduce(state.priority, lots)
            if state.filled == state.quantity:
                del self._orders[state.order_id], self._resting[state.priority]
        elif isinstance(event, OrderAccepted):
            spec = self._spec(event.market)
            state = OrderState(
                event.order_id, event.client_order_id, event.account, event.site, event.market,
                event.side, event.time_in_force, event.delivery_start, event.delivery_end, spec,
                _ticks(spec, event.limit_price_eur_mwh), _lots(spec, event.quantity_mwh), 0,
                self._next_priority(),
            )
            self._seen.add(state.order_id)
            self._rest(state)
        elif isinstance(event, (OrderCancelled, OrderExpired)):
            self._unrest(self._orders[event.order_id])
        elif isinstance(event, OrderModified):
            state = self._orders[event.order_id]
            book = self._books[state.book_key]
            price = _ticks(state.spec, event.limit_price_eur_mwh)
            quantity = _lots(state.spec, event.quantity_mwh)
            if event.lost_priority:
                book.remove(state.priority)
                del self._resting[state.priority]
                state.price, state.quantity, state.priority = (
                    price, quantity, self._next_priority())
                self._rest(state)
            elif quantity < state.quantity:
                book.reduce(state.priority, state.quantity - quantity)
                state.quantity = quantity
        elif (isinstance(event, OrderRejected) and event.stage == "matching"
              and event.reason != "unknown_order"):
            self._seen.add(event.order_id)

    def _rest(self, state: OrderState) -> None:
        book = self._books.get(state.book_key) or self._new_book(state.book_key, state.spec)
        side = BUY if state.side is Side.BUY else SELL
        book.add(state.priority, side, state.price, state.remaining, state.account)
        self._orders[state.order_id] = state
        self._resting[state.priority] = state

    def _unrest(self, state: OrderState) -> None:
        """Take a resting order out of its book and the engine."""
        self._books[state.book_key].remove(state.priority)
        del self._orders[state.order_id], self._resting[state.priority]

    # -- snapshot --------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """The resting orders as JSON-safe rows (one per order id), in priority order."""
        return [order.to_dict() for order in self.open_orders()]

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the state by the resting orders of a `snapshot` (rows in any order)."""
        self._reset()
        for order in sorted((OpenOrder.from_dict(row) for row in rows), key=_by_priority):
            spec = self._spec(order.market)
            state = OrderState(
                order.order_id, order.client_order_id, order.account, order.site, order.market,
                order.side, order.time_in_force, order.delivery_start.astimezone(UTC),
                order.delivery_end.astimezone(UTC), spec,
                _ticks(spec, order.limit_price_eur_mwh), _lots(spec, order.quantity_mwh),
                _lots(spec, order.filled_quantity_mwh) if order.filled_quantity_mwh else 0,
                order.priority,
            )
            self._seen.add(state.order_id)
            self._rest(state)
            self._priority = max(self._priority, order.priority + 1)

    # -- views -----------------------------------------------------------------------------

    def open_order(self, order_id: uuid.UUID) -> OpenOrder | None:
        """The resting order `order_id`, or None when it is not (or no longer) open."""
        state = self._orders.get(order_id)
        return None if state is None else state.view()

    def open_orders(
        self, *, market: str | None = None, site: str | None = None
    ) -> list[OpenOrder]:
        """Resting orders (optionally of one market / site), in priority order."""
        return [
            s.view() for s in sorted(self._orders.values(), key=_by_priority)
            if (market is None or s.market == market) and (site is None or s.site == site)
        ]

    def delivery_periods(self, market: str) -> list[datetime]:
        """Delivery starts of `market` that have a book with resting orders."""
        return sorted(start for (m, start), book in self._books.items() if m == market and book)

    def depth(self, market: str, delivery_start: datetime, levels: int = 10) -> BookDepth:
        """Aggregated price levels of one book (empty for an unknown market or period)."""
        start = _utc(delivery_start)
        book = self._books.get((market, start))
        spec = self._specs.get(market)
        if book is None or spec is None:
            return BookDepth(market, start, [], [])

        def side(s: int) -> list[DepthLevel]:
            return [
                DepthLevel(spec.price(p), spec.quantity(q), n) for p, q, n in book.depth(s, levels)
            ]

        return BookDepth(market, start, side(BUY), side(SELL))

    def _spec(self, market: str) -> MarketSpec:
        spec = self._specs.get(market)
        if spec is None:
            raise ValueError(f"unknown market {market!r}")
        return spec

    def _new_book(self, key: BookKey, spec: MarketSpec) -> OrderBook[int]:
        book: OrderBook[int] = OrderBook()
        self._books[key] = book
        heapq.heappush(self._closures, (spec.gate_closure(key[1]), key[0], key[1]))
        return book

    def _next_priority(self) -> int:
        self._priority += 1
        return self._priority


def _by_priority(order: OrderState | OpenOrder) -> int:
    return order.priority


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _ticks(spec: MarketSpec, price: Any) -> int:
    ticks = spec.to_ticks(price)
    if ticks is None:
        raise ValueError(f"price {price} is off the tick grid of {spec.market}")
    return ticks


def _lots(spec: MarketSpec, quantity: Any) -> int:
    lots = spec.to_lots(quantity)
    if lots is None:
        raise ValueError(f"quantity {quantity} is off the step grid of {spec.market}")
    return lots
