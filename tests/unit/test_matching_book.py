"""The integer order book core: priority, lazy cancels, reduce, FOK check, STP, depth."""

from __future__ import annotations

import pytest

from domain.matching.book import BUY, SELL, BookOrder, Fill, OrderBook
from domain.matching.spec import DEFAULT_SPECS, MarketSpec, midpoint_ticks, spec_for


def _book(*orders: tuple[int, int, int, int, str]) -> OrderBook[int]:
    book: OrderBook[int] = OrderBook()
    for oid, side, price, lots, account in orders:
        book.add(BookOrder(oid, side, price, lots, account))
    return book


def test_match_walks_levels_best_price_first_then_time() -> None:
    book = _book((1, SELL, 101, 5, "a"), (2, SELL, 100, 3, "a"), (3, SELL, 100, 4, "b"),
                 (4, SELL, 102, 9, "a"))
    out: list[Fill[int]] = []
    left = book.match(BUY, 101, 10, "x", True, out)
    assert left == 0
    assert [(o.order_id, lots) for o, lots in out] == [(2, 3), (3, 4), (1, 3)]
    assert book.get(1) is not None and book.get(1).remaining == 2  # type: ignore[union-attr]
    assert book.best(SELL) == 101 and len(book) == 2
    assert book.depth(SELL) == [(101, 2, 1), (102, 9, 1)]


def test_match_stops_at_limit_and_returns_the_rest() -> None:
    book = _book((1, BUY, 100, 5, "a"), (2, BUY, 99, 5, "a"))
    out: list[Fill[int]] = []
    assert book.match(SELL, 100, 8, "x", True, out) == 3
    assert [(o.order_id, lots) for o, lots in out] == [(1, 5)]
    assert book.best(BUY) == 99


def test_lazy_cancel_keeps_priority_of_the_others_and_drops_empty_levels() -> None:
    book = _book((1, SELL, 100, 1, "a"), (2, SELL, 100, 2, "a"), (3, SELL, 100, 3, "a"))
    assert book.remove(2) is not None
    assert book.remove(2) is None
    assert book.depth(SELL) == [(100, 4, 2)]
    out: list[Fill[int]] = []
    book.match(BUY, 100, 10, "x", True, out)
    assert [(o.order_id, lots) for o, lots in out] == [(1, 1), (3, 3)]
    assert book.best(SELL) is None and book.depth(SELL) == []
    book.add(BookOrder(4, SELL, 100, 1, "a"))
    assert book.remove(4) is not None and book.best(SELL) is None


def test_many_cancels_compact_a_level() -> None:
    book = _book(*[(i, BUY, 50, 1, "a") for i in range(300)])
    for i in range(1, 299):
        book.remove(i)
    assert [o.order_id for o in book.orders(BUY)] == [0, 299]
    assert book.depth(BUY) == [(50, 2, 2)]


def test_reduce_keeps_priority_and_removes_at_zero() -> None:
    book = _book((1, BUY, 10, 5, "a"), (2, BUY, 10, 5, "b"))
    book.reduce(1, 4)
    assert [o.order_id for o in book.orders(BUY)] == [1, 2]
    book.reduce(1, 1)
    assert 1 not in book and book.depth(BUY) == [(10, 5, 1)]
    with pytest.raises(ValueError):
        book.reduce(2, 6)


def test_self_trade_prevention_cancels_resting_and_continues() -> None:
    book = _book((1, SELL, 100, 5, "me"), (2, SELL, 100, 5, "you"))
    out: list[Fill[int]] = []
    assert book.match(BUY, 100, 5, "me", True, out) == 0
    assert [(o.order_id, lots, o.remaining) for o, lots in out] == [(1, 0, 5), (2, 5, 0)]
    assert len(book) == 0
    book = _book((1, SELL, 100, 5, "me"))
    out.clear()
    assert book.match(BUY, 100, 5, "me", False, out) == 0  # STP off: trades


def test_fillable_counts_only_crossing_liquidity_of_other_accounts() -> None:
    book = _book((1, SELL, 100, 5, "me"), (2, SELL, 101, 5, "you"), (3, SELL, 103, 5, "you"))
    assert book.fillable(BUY, 101, 10, "x", True)
    assert not book.fillable(BUY, 101, 11, "x", True)
    assert not book.fillable(BUY, 101, 10, "me", True)
    assert book.fillable(BUY, 101, 10, "me", False)
    assert not book.fillable(SELL, 1, 1, "x", True)


def test_spec_conversions_reject_off_grid_values() -> None:
    from decimal import Decimal as D

    spec = MarketSpec("X")
    assert spec.to_ticks(D("39.5")) == 3950 and spec.to_ticks(D("-0.01")) == -1
    assert spec.to_ticks(D("39.505")) is None and spec.to_ticks(D("NaN")) is None
    assert spec.to_ticks(D("1234567890123456789012345678901.01")) is None  # beyond precision
    assert spec.to_lots(D("0.5")) == 500 and spec.to_lots(D("0.0005")) is None
    assert spec.to_lots(D("0")) is None
    assert spec.price(3950) == D("39.5") and spec.quantity(500) == D("0.5")
    with pytest.raises(ValueError):
        MarketSpec("Y", price_tick=D("0"))


def test_midpoint_rounds_half_ticks_to_even() -> None:
    assert midpoint_ticks(4000, 3900) == 3950
    assert midpoint_ticks(4001, 4000) == 4000  # 4000.5 -> even 4000
    assert midpoint_ticks(4002, 4001) == 4002  # 4001.5 -> even 4002
    assert midpoint_ticks(-1, -2) == -2
    for a in range(-7, 8):
        for b in range(a, 9):
            assert a <= midpoint_ticks(a, b) <= b


def test_default_specs() -> None:
    assert spec_for("NOPE") is None
    assert spec_for("INTERNAL") == DEFAULT_SPECS["INTERNAL"]
    assert DEFAULT_SPECS["INTERNAL"].price_rule == "midpoint"
    assert DEFAULT_SPECS["EPEX_AT_INTRADAY_15MIN"].price_rule == "maker"
    assert DEFAULT_SPECS["EPEX_DE_INTRADAY_15MIN"].gate_closure_s == 300
