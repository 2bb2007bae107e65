"""Hypothesis: random order streams (adds, cancels, modifies, crossing orders, time passing)
never cross the book, conserve quantity, never overfill, and replay to the same book."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.matching import MatchingEngine
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
    Side,
    SubmitOrder,
    TimeInForce,
    TradeExecuted,
)
from tests.unit.test_matching_engine import DELIVERY, T0, assert_valid, book_state

MARKETS = ("INTERNAL", "EPEX_AT_INTRADAY_15MIN")
PERIODS = (DELIVERY, DELIVERY + timedelta(minutes=15))

submits = st.tuples(
    st.just("submit"), st.sampled_from(MARKETS), st.sampled_from(PERIODS),
    st.booleans(), st.integers(1, 30), st.integers(-8, 8),
    st.sampled_from(["GTC", "GTC", "GTC", "IOC", "FOK"]), st.integers(0, 2),
)
"""(kind, market, period, flip side, lots of 0.1 MWh, ticks off 40 EUR/MWh, TIF, account shift):
side and account rotate with the position so that even simple examples cross and self-trade."""
cancels = st.tuples(st.just("cancel"), st.integers(0, 50))
modifies = st.tuples(st.just("modify"), st.integers(0, 50), st.none() | st.integers(1, 30),
                     st.none() | st.integers(-8, 8))
ticks = st.tuples(st.just("time"), st.sampled_from([0, 1, 2, 5, 30]))  # minutes forward
ops = st.lists(st.sampled_from(["submit"] * 6 + ["cancel", "modify", "time"]).flatmap(
    lambda kind: {"submit": submits, "cancel": cancels, "modify": modifies, "time": ticks}[kind]
), min_size=1, max_size=80)

QTY = Decimal("0.1")
PRICE = Decimal("0.01")


def _command(op: tuple[Any, ...], orders: list[SubmitOrder], n: int, now: Any) -> Payload | None:
    if op[0] == "submit":
        _, market, period, flip, qty, price, tif, shift = op
        side = Side.BUY if (n + flip) % 2 == 0 else Side.SELL
        account = "abc"[(n + shift) % 3]
        return SubmitOrder(
            order_id=uuid.UUID(int=n), account=account, site=f"site-{account}", market=market,
            side=side, quantity_mwh=qty * QTY, limit_price_eur_mwh=Decimal(40) + price * PRICE,
            time_in_force=TimeInForce(tif), delivery_start=period,
            delivery_end=period + timedelta(minutes=15), submitted_at=now,
        )
    if not orders:
        return None
    target = orders[op[1] % len(orders)]
    if op[0] == "cancel":
        return CancelOrder(order_id=target.order_id, site=target.site, market=target.market,
                           requested_at=now)
    _, _, qty, price = op
    return ModifyOrder(
        order_id=target.order_id, site=target.site, market=target.market,
        new_quantity_mwh=None if qty is None else qty * QTY,
        new_limit_price_eur_mwh=None if price is None else Decimal(40) + price * PRICE,
        requested_at=now,
    )


def _check_uncrossed(engine: MatchingEngine) -> None:
    for market in MARKETS:
        for period in PERIODS:
            depth = engine.depth(market, period, levels=1)
            if depth.bids and depth.asks:
                assert depth.bids[0].price_eur_mwh < depth.asks[0].price_eur_mwh


def _check_conservation(engine: MatchingEngine, log: list[Payload]) -> None:
    quantity: dict[uuid.UUID, Decimal] = {}
    limit: dict[uuid.UUID, Decimal] = {}
    filled: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    closed: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    traded = {Side.BUY: Decimal(0), Side.SELL: Decimal(0)}
    trade_total = Decimal(0)
    for event in log:
        if isinstance(event, OrderAccepted):
            quantity[event.order_id] = event.quantity_mwh
            limit[event.order_id] = event.limit_price_eur_mwh
        elif isinstance(event, OrderModified):
            quantity[event.order_id] = event.quantity_mwh
            limit[event.order_id] = event.limit_price_eur_mwh
            assert event.quantity_mwh > filled[event.order_id]
        elif isinstance(event, (OrderPartiallyFilled, OrderFilled)):
            filled[event.order_id] += event.fill_quantity_mwh
            traded[event.side] += event.fill_quantity_mwh
            assert event.filled_quantity_mwh == filled[event.order_id]
            assert filled[event.order_id] <= quantity[event.order_id]  # never overfilled
            assert event.remaining_quantity_mwh == quantity[event.order_id] - filled[
                event.order_id]
            assert isinstance(event, OrderFilled) == (event.remaining_quantity_mwh == 0)
        elif isinstance(event, (OrderCancelled, OrderExpired)):
            closed[event.order_id] += event.remaining_quantity_mwh
        elif isinstance(event, TradeExecuted):
            trade_total += event.quantity_mwh
            assert event.quantity_mwh > 0
            assert limit[event.sell_order_id] <= event.price_eur_mwh <= limit[event.buy_order_id]
    resting = {o.order_id: o.remaining_quantity_mwh for o in engine.open_orders()}
    for order_id, submitted in quantity.items():
        assert filled[order_id] + closed[order_id] + resting.get(order_id, 0) == submitted
    assert traded[Side.BUY] == traded[Side.SELL] == trade_total
    assert sum(quantity.values()) == (sum(filled.values()) + sum(closed.values())
                                      + sum(resting.values()))


def _play_and_check(stream: list[tuple[Any, ...]]) -> list[Payload]:
    engine = MatchingEngine()
    now = T0 + timedelta(minutes=100)  # gate closures at 11:55 and 12:10
    orders: list[SubmitOrder] = []
    log: list[Payload] = []
    for n, op in enumerate(stream):
        if op[0] == "time":
            now += timedelta(minutes=op[1])
            log.extend(engine.expire(now))
            continue
        command = _command(op, orders, n, now)
        if command is None:
            continue
        if isinstance(command, SubmitOrder):
            orders.append(command)
        log.extend(engine.handle(command, now))
        _check_uncrossed(engine)
    _check_conservation(engine, log)
    replayed = MatchingEngine.from_events(log)
    assert replayed.snapshot() == engine.snapshot()
    restored = MatchingEngine()
    restored.restore(engine.snapshot())
    assert book_state(restored) == book_state(engine)
    for market in MARKETS:
        for period in PERIODS:
            assert replayed.depth(market, period) == engine.depth(market, period)
    return log


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_streams_keep_the_book_consistent(stream: list[tuple[Any, ...]]) -> None:
    assert_valid(_play_and_check(stream))


@pytest.mark.parametrize("seed", range(5))
def test_long_seeded_streams_keep_the_book_consistent(seed: int) -> None:
    """Dense books: 1500 commands per stream, one market and period, all invariants."""
    rng = random.Random(seed)
    stream: list[tuple[Any, ...]] = []
    for _ in range(1500):
        kind = rng.choices(["submit", "cancel", "modify"], [6, 2, 2])[0]
        if kind == "submit":
            stream.append(("submit", "INTERNAL", DELIVERY, rng.random() < 0.5,
                           rng.randint(1, 30), rng.randint(-8, 8),
                           rng.choice(["GTC"] * 6 + ["IOC", "FOK"]), rng.randint(0, 2)))
        elif kind == "cancel":
            stream.append(("cancel", rng.randint(0, 10**6)))
        else:
            stream.append(("modify", rng.randint(0, 10**6),
                           rng.choice([None, rng.randint(1, 30)]),
                           rng.choice([None, rng.randint(-8, 8)])))
    log = _play_and_check(stream)
    assert sum(isinstance(e, TradeExecuted) for e in log) > 300


@settings(max_examples=100, deadline=None)
@given(ops, st.integers(0, 60))
def test_replaying_a_prefix_then_continuing_equals_the_live_engine(
    stream: list[tuple[Any, ...]], cut: int
) -> None:
    """Restart in the middle: rebuild from the log so far, then handle the rest."""
    live = MatchingEngine()
    now = T0 + timedelta(minutes=100)
    orders: list[SubmitOrder] = []
    log: list[Payload] = []
    restarted: MatchingEngine | None = None
    for n, op in enumerate(stream):
        if n == cut:
            restarted = MatchingEngine.from_events(log)
        if op[0] == "time":
            now += timedelta(minutes=op[1])
            continue
        command = _command(op, orders, n, now)
        if command is None:
            continue
        if isinstance(command, SubmitOrder):
            orders.append(command)
        events = live.handle(command, now)
        log.extend(events)
        if restarted is not None:
            assert restarted.handle(command, now) == events
    if restarted is not None:
        assert restarted.snapshot() == live.snapshot()
