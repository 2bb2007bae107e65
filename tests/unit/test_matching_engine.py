"""Matching engine scenarios: given commands -> expected events (seed 000, sections 3-4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.matching import DEFAULT_SPECS, MarketSpec, MatchingEngine
from schemas.base import Payload
from schemas.envelope import decode, encode, new_envelope
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
    SetKillSwitch,
    Side,
    SubmitOrder,
    TimeInForce,
    TradeExecuted,
)

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
DELIVERY = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
AT = "EPEX_AT_INTRADAY_15MIN"


def submit(
    side: str, quantity: str, price: str, *, account: str = "acct-a", site: str = "site-a",
    market: str = "INTERNAL", tif: str = "GTC", delivery: datetime = DELIVERY,
    order_id: uuid.UUID | None = None,
) -> SubmitOrder:
    return SubmitOrder(
        order_id=order_id or uuid.uuid4(), account=account, site=site, market=market,
        side=Side(side), quantity_mwh=Decimal(quantity), limit_price_eur_mwh=Decimal(price),
        time_in_force=TimeInForce(tif), delivery_start=delivery,
        delivery_end=delivery + timedelta(minutes=15), submitted_at=T0,
    )


def cancel(order: SubmitOrder) -> CancelOrder:
    return CancelOrder(order_id=order.order_id, site=order.site, market=order.market,
                       requested_at=T0)


def modify(order: SubmitOrder, quantity: str | None = None, price: str | None = None
           ) -> ModifyOrder:
    return ModifyOrder(
        order_id=order.order_id, site=order.site, market=order.market,
        new_quantity_mwh=None if quantity is None else Decimal(quantity),
        new_limit_price_eur_mwh=None if price is None else Decimal(price), requested_at=T0,
    )


def names(events: list[Payload]) -> list[str]:
    return [type(e).__name__ for e in events]


def trades(events: list[Payload]) -> list[tuple[Decimal, Decimal]]:
    return [(e.quantity_mwh, e.price_eur_mwh) for e in events if isinstance(e, TradeExecuted)]


def run(engine: MatchingEngine, *commands: Payload, now: datetime = T0) -> list[Payload]:
    out: list[Payload] = []
    for command in commands:
        out.extend(engine.handle(command, now))
    return out


def assert_valid(events: list[Payload]) -> None:
    """Events are built without validation: they must validate and survive the wire, and be
    what ``model_construct`` builds (same fields, same order, same fields_set)."""
    for event in events:
        cls = type(event)
        assert cls.model_validate(event.model_dump()) == event
        constructed = cls.model_construct(**event.model_dump())
        assert constructed == event and repr(constructed) == repr(event)
        assert constructed.model_fields_set == event.model_fields_set == set(cls.model_fields)
        assert decode(encode(new_envelope(event, occurred_at=T0, source="test"))).payload == event


def test_predecessor_example_trades_at_the_midpoint() -> None:
    engine = MatchingEngine()
    buy = submit("BUY", "1.0", "40")
    sell = submit("SELL", "0.5", "39", account="acct-b")
    assert names(run(engine, buy)) == ["OrderAccepted"]
    events = run(engine, sell)
    assert names(events) == ["OrderAccepted", "TradeExecuted", "OrderPartiallyFilled",
                             "OrderFilled"]
    trade, maker, taker = events[1], events[2], events[3]
    assert isinstance(trade, TradeExecuted)
    assert (trade.quantity_mwh, trade.price_eur_mwh) == (Decimal("0.5"), Decimal("39.5"))
    assert (trade.buy_order_id, trade.sell_order_id) == (buy.order_id, sell.order_id)
    assert trade.aggressor_side is Side.SELL and trade.price_rule == "midpoint"
    assert isinstance(maker, OrderPartiallyFilled) and maker.order_id == buy.order_id
    assert maker.filled_quantity_mwh == maker.remaining_quantity_mwh == Decimal("0.5")
    assert isinstance(taker, OrderFilled) and taker.order_id == sell.order_id
    assert trade.trade_id == maker.trade_id == taker.trade_id
    [resting] = engine.open_orders()
    assert resting.order_id == buy.order_id and resting.remaining_quantity_mwh == Decimal("0.5")
    assert_valid(events)


def test_midpoint_half_tick_rounds_half_to_even() -> None:
    engine = MatchingEngine()
    run(engine, submit("SELL", "1", "40.00", account="b"))
    events = run(engine, submit("BUY", "1", "40.01"))
    assert trades(events) == [(Decimal("1"), Decimal("40.00"))]


def test_maker_rule_trades_at_the_resting_price() -> None:
    engine = MatchingEngine()
    run(engine, submit("SELL", "1", "39", account="b", market=AT))
    events = run(engine, submit("BUY", "1", "45", market=AT))
    assert trades(events) == [(Decimal("1"), Decimal("39"))]
    assert events[1].price_rule == "maker"  # type: ignore[attr-defined]


def test_price_time_priority_across_levels_and_ties() -> None:
    engine = MatchingEngine()
    s1 = submit("SELL", "1", "41", account="b")
    s2 = submit("SELL", "1", "40", account="c")
    s3 = submit("SELL", "1", "40", account="d")  # same price, later
    s4 = submit("SELL", "1", "39.99", account="e")
    s5 = submit("SELL", "1", "42", account="f")
    run(engine, s1, s2, s3, s4, s5)
    events = run(engine, submit("BUY", "3.5", "41", market="INTERNAL"))
    sells = [e.sell_order_id for e in events if isinstance(e, TradeExecuted)]
    assert sells == [s4.order_id, s2.order_id, s3.order_id, s1.order_id]
    assert [q for q, _ in trades(events)] == [Decimal(1)] * 3 + [Decimal("0.5")]
    depth = engine.depth("INTERNAL", DELIVERY)
    assert [(lvl.price_eur_mwh, lvl.quantity_mwh) for lvl in depth.asks] == [
        (Decimal(41), Decimal("0.5")), (Decimal(42), Decimal(1))]
    assert depth.bids == []


def test_sell_takes_highest_bids_first() -> None:
    engine = MatchingEngine()
    b1 = submit("BUY", "1", "38", account="b")
    b2 = submit("BUY", "1", "39", account="c")
    run(engine, b1, b2)
    events = run(engine, submit("SELL", "2", "37", market="INTERNAL"))
    assert [e.buy_order_id for e in events if isinstance(e, TradeExecuted)] == [
        b2.order_id, b1.order_id]
    assert trades(events) == [(Decimal(1), Decimal(38)), (Decimal(1), Decimal("37.5"))]


def test_partial_fills_across_levels_leave_the_rest_resting() -> None:
    engine = MatchingEngine()
    run(engine, submit("SELL", "0.3", "40", account="b"), submit("SELL", "0.3", "41", account="b"))
    buy = submit("BUY", "1", "41")
    events = run(engine, buy)
    assert names(events) == ["OrderAccepted"] + ["TradeExecuted", "OrderFilled",
                                                 "OrderPartiallyFilled"] * 2
    last = events[-1]
    assert isinstance(last, OrderPartiallyFilled)
    assert last.filled_quantity_mwh == Decimal("0.6")
    assert last.remaining_quantity_mwh == Decimal("0.4")
    assert engine.depth("INTERNAL", DELIVERY).bids[0].quantity_mwh == Decimal("0.4")
    assert_valid(events)


def test_ioc_fills_what_crosses_and_cancels_the_rest() -> None:
    engine = MatchingEngine()
    run(engine, submit("SELL", "0.4", "40", account="b"))
    events = run(engine, submit("BUY", "1", "40", tif="IOC"))
    assert names(events) == ["OrderAccepted", "TradeExecuted", "OrderFilled",
                             "OrderPartiallyFilled", "OrderCancelled"]
    cancelled = events[-1]
    assert isinstance(cancelled, OrderCancelled) and cancelled.reason == "ioc_remainder"
    assert cancelled.remaining_quantity_mwh == Decimal("0.6")
    assert engine.open_orders() == []
    assert names(run(engine, submit("BUY", "1", "40", tif="IOC"))) == [
        "OrderAccepted", "OrderCancelled"]


def test_fok_fills_completely_or_is_rejected_without_trades() -> None:
    engine = MatchingEngine()
    run(engine, submit("SELL", "0.4", "40", account="b"), submit("SELL", "0.4", "41", account="c"))
    events = run(engine, submit("BUY", "1", "41", tif="FOK"))
    assert names(events) == ["OrderRejected"]
    assert events[0].reason == "fok_not_fillable"  # type: ignore[attr-defined]
    assert len(engine.open_orders()) == 2
    events = run(engine, submit("BUY", "0.8", "41", tif="FOK"))
    assert names(events).count("TradeExecuted") == 2 and names(events)[-1] == "OrderFilled"
    assert engine.open_orders() == []


def test_self_trade_prevention_cancels_the_resting_order() -> None:
    engine = MatchingEngine()
    own = submit("SELL", "1", "40", account="me")
    other = submit("SELL", "1", "40", account="you")
    run(engine, own, other)
    events = run(engine, submit("BUY", "1", "40", account="me"))
    assert names(events) == ["OrderAccepted", "OrderCancelled", "TradeExecuted", "OrderFilled",
                             "OrderFilled"]
    stp = events[1]
    assert isinstance(stp, OrderCancelled) and stp.order_id == own.order_id
    assert stp.reason == "self_trade_prevention" and stp.remaining_quantity_mwh == Decimal(1)
    assert events[2].sell_order_id == other.order_id  # type: ignore[attr-defined]
    # FOK counts only other accounts' liquidity
    run(engine, submit("SELL", "1", "40", account="me"))
    assert names(run(engine, submit("BUY", "1", "40", account="me", tif="FOK"))) == [
        "OrderRejected"]


def test_self_trade_prevention_can_be_switched_off() -> None:
    engine = MatchingEngine({"M": MarketSpec("M", self_trade_prevention=False)})
    run(engine, submit("SELL", "1", "40", account="me", market="M"))
    assert trades(run(engine, submit("BUY", "1", "40", account="me", market="M"))) == [
        (Decimal(1), Decimal(40))]


def test_gate_closure_rejects_submits_and_expires_resting_orders() -> None:
    engine = MatchingEngine()
    closure = DELIVERY - timedelta(seconds=300)
    resting = submit("BUY", "1", "40", market=AT)
    assert names(engine.handle(resting, closure - timedelta(microseconds=1))) == ["OrderAccepted"]
    other = submit("BUY", "1", "40", market=AT, delivery=DELIVERY + timedelta(minutes=15))
    run(engine, other, now=closure - timedelta(seconds=1))
    late = submit("SELL", "1", "40", market=AT, account="b")
    events = engine.handle(late, closure)
    assert names(events) == ["OrderExpired", "OrderRejected"]
    expired, rejected = events
    assert isinstance(expired, OrderExpired) and expired.order_id == resting.order_id
    assert expired.remaining_quantity_mwh == Decimal(1) and expired.expired_at == closure
    assert isinstance(rejected, OrderRejected) and rejected.reason == "gate_closed"
    assert [o.order_id for o in engine.open_orders()] == [other.order_id]
    assert engine.expire(closure + timedelta(minutes=15)) != []
    assert engine.open_orders() == [] and engine.expire(DELIVERY + timedelta(days=1)) == []


def test_cancel() -> None:
    engine = MatchingEngine()
    order = submit("BUY", "1", "40")
    run(engine, order)
    [event] = run(engine, cancel(order))
    assert isinstance(event, OrderCancelled) and event.reason == "requested"
    [again] = run(engine, cancel(order))
    assert isinstance(again, OrderRejected) and again.reason == "order_not_open"
    unknown = submit("BUY", "1", "40")
    [event] = run(engine, cancel(unknown))
    assert isinstance(event, OrderRejected) and event.reason == "unknown_order"
    mine = submit("BUY", "1", "40")
    run(engine, mine)
    foreign = CancelOrder(order_id=mine.order_id, site="other", market=mine.market,
                          requested_at=T0)
    assert run(engine, foreign)[0].reason == "unknown_order"  # type: ignore[attr-defined]


def test_modify_down_keeps_priority_up_or_reprice_loses_it() -> None:
    engine = MatchingEngine()
    first = submit("SELL", "2", "40", account="b")
    second = submit("SELL", "2", "40", account="c")
    run(engine, first, second)
    [event] = run(engine, modify(first, quantity="1"))
    assert isinstance(event, OrderModified) and not event.lost_priority
    assert [o.order_id for o in engine.open_orders()] == [first.order_id, second.order_id]
    [event] = run(engine, modify(first, quantity="3"))
    assert isinstance(event, OrderModified) and event.lost_priority
    assert [o.order_id for o in engine.open_orders()] == [second.order_id, first.order_id]
    [event] = run(engine, modify(second, price="40.00"))  # same price: nothing lost
    assert isinstance(event, OrderModified) and not event.lost_priority
    [event] = run(engine, modify(second, price="40.01"))
    assert isinstance(event, OrderModified) and event.lost_priority
    taker = run(engine, submit("BUY", "1", "40.01", market="INTERNAL"))
    assert [e.sell_order_id for e in taker if isinstance(e, TradeExecuted)] == [first.order_id]


def test_modify_that_crosses_matches_at_once() -> None:
    engine = MatchingEngine({AT: DEFAULT_SPECS[AT]})
    bid = submit("BUY", "1", "39", market=AT, account="b")
    ask = submit("SELL", "2", "41", market=AT)
    run(engine, bid, ask)
    events = run(engine, modify(ask, price="38"))
    assert names(events) == ["OrderModified", "TradeExecuted", "OrderFilled",
                             "OrderPartiallyFilled"]
    trade = events[1]
    assert isinstance(trade, TradeExecuted) and trade.aggressor_side is Side.SELL
    assert trade.price_eur_mwh == Decimal(39)
    assert engine.open_orders()[0].remaining_quantity_mwh == Decimal(1)
    assert_valid(events)


def test_modify_rejections() -> None:
    engine = MatchingEngine()
    run(engine, submit("SELL", "0.5", "40", account="b"))
    order = submit("BUY", "1", "40")
    run(engine, order)  # 0.5 filled
    reasons = [run(engine, cmd)[0].reason for cmd in (  # type: ignore[attr-defined]
        modify(order, quantity="0.5"), modify(order, price="40.001"),
        modify(order, quantity="0.0001"), modify(submit("BUY", "1", "1")))]
    assert reasons == ["quantity_below_filled", "invalid_price_tick", "invalid_quantity_step",
                       "unknown_order"]


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"price": "40.005"}, "invalid_price_tick"),
    ({"quantity": "0.0005"}, "invalid_quantity_step"),
    ({"market": "NOWHERE"}, "unknown_market"),
])
def test_submit_validation(kwargs: dict[str, Any], reason: str) -> None:
    args: dict[str, Any] = {"side": "BUY", "quantity": "1", "price": "40"} | kwargs
    market = args.pop("market", "INTERNAL")
    [event] = MatchingEngine().handle(submit(market=market, **args), T0)
    assert isinstance(event, OrderRejected) and event.reason == reason
    assert event.stage == "matching"


def test_duplicate_order_id_is_rejected() -> None:
    engine = MatchingEngine()
    order = submit("BUY", "1", "40")
    run(engine, order)
    run(engine, cancel(order))
    [event] = run(engine, order)
    assert isinstance(event, OrderRejected) and event.reason == "duplicate_order"


def test_trade_ids_are_deterministic() -> None:
    def play() -> list[Payload]:
        engine = MatchingEngine()
        ids = [uuid.UUID(int=i) for i in range(3)]
        return run(engine, submit("SELL", "1", "40", account="b", order_id=ids[0]),
                   submit("SELL", "1", "41", account="b", order_id=ids[1]),
                   submit("BUY", "2", "41", order_id=ids[2]))

    first, second = play(), play()
    assert first == second
    trade_ids = [e.trade_id for e in first if isinstance(e, TradeExecuted)]
    assert len(set(trade_ids)) == 2


def test_kill_switch_cancels_the_sites_orders() -> None:
    engine = MatchingEngine()
    run(engine, submit("BUY", "1", "40", site="x"), submit("BUY", "1", "39", site="y"))
    events = run(engine, SetKillSwitch(site="x", engaged=True, requested_at=T0))
    assert [(e.site, e.reason) for e in events] == [("x", "kill_switch")]  # type: ignore[attr-defined]
    assert [o.site for o in engine.open_orders()] == ["y"]


def book_state(engine: MatchingEngine) -> list[dict[str, Any]]:
    """The snapshot (in priority order) without the absolute priority numbers: a restored
    engine continues numbering after the highest *resting* priority."""
    return [{k: v for k, v in row.items() if k != "priority"} for row in engine.snapshot()]


def test_replay_and_snapshot_restore_rebuild_the_book() -> None:
    engine = MatchingEngine()
    log = run(engine, submit("SELL", "1", "40", account="b"),
              submit("SELL", "1", "40", account="c"), submit("BUY", "1.5", "40"),
              submit("BUY", "2", "39.5"))
    replayed = MatchingEngine.from_events(log)
    assert replayed.snapshot() == engine.snapshot()
    restored = MatchingEngine()
    restored.restore(reversed(engine.snapshot()))
    assert restored.snapshot() == engine.snapshot()
    follow = submit("SELL", "3", "39", account="z")
    assert run(restored, follow) == run(engine, follow)
    assert book_state(restored) == book_state(engine)
    assert engine.delivery_periods("INTERNAL") == [DELIVERY]


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        MatchingEngine().handle(submit("BUY", "1", "40"), datetime(2024, 1, 1))


def test_events_are_accepted_by_their_schemas() -> None:
    engine = MatchingEngine()
    order = submit("BUY", "1", "40", tif="GTC")
    events = run(engine, order, submit("SELL", "2", "39", account="b"), modify(order, "2"))
    assert isinstance(events[0], OrderAccepted)
    assert_valid(events)
