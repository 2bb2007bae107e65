"""The integer order book core: priority, lazy cancels, compaction, reduce, FOK check, STP,
depth."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.matching import book as book_module
from domain.matching.book import BUY, SELL, Fill, OrderBook
from domain.matching.spec import DEFAULT_SPECS, MarketSpec, midpoint_ticks, spec_for


def _book(*orders: tuple[int, int, int, int, str]) -> OrderBook[int]:
    book: OrderBook[int] = OrderBook()
    for oid, side, price, lots, account in orders:
        book.add(oid, side, price, lots, account)
    return book


def _entries(book: OrderBook[int]) -> int:
    """Deque entries, dead ones included (what compaction bounds)."""
    return sum(len(level) for side in (BUY, SELL) for _, level in book._levels(side))


def test_match_walks_levels_best_price_first_then_time() -> None:
    book = _book((1, SELL, 101, 5, "a"), (2, SELL, 100, 3, "a"), (3, SELL, 100, 4, "b"),
                 (4, SELL, 102, 9, "a"))
    out: list[Fill[int]] = []
    left = book.match(BUY, 101, 10, "x", True, out)
    assert left == 0
    assert out == [(2, 3), (3, 4), (1, 3)]
    assert book.remaining(1) == 2 and book.remaining(2) is None
    assert book.best(SELL) == 101 and len(book) == 2
    assert book.depth(SELL) == [(101, 2, 1), (102, 9, 1)]


def test_match_stops_at_limit_and_returns_the_rest() -> None:
    book = _book((1, BUY, 100, 5, "a"), (2, BUY, 99, 5, "a"))
    out: list[Fill[int]] = []
    assert book.match(SELL, 100, 8, "x", True, out) == 3
    assert out == [(1, 5)]
    assert book.best(BUY) == 99
    assert 3 not in book  # match never rests


def test_place_rests_the_remainder_behind_the_level() -> None:
    book = _book((1, SELL, 100, 5, "a"), (2, BUY, 99, 1, "a"))
    out: list[Fill[int]] = []
    assert book.place(3, BUY, 100, 8, "x", True, out) == 3
    assert out == [(1, 5)]
    assert book.best(BUY) == 100 and book.best(SELL) is None
    assert book.depth(BUY) == [(100, 3, 1), (99, 1, 1)]
    out.clear()
    assert book.place(4, BUY, 99, 2, "x", True, out) == 2 and not out
    assert list(book.orders(BUY)) == [(3, 3), (2, 1), (4, 2)]
    assert book.match(SELL, 98, 4, "y", True, out) == 0
    assert out == [(3, 3), (2, 1)] and 5 not in book


def test_lazy_cancel_keeps_priority_of_the_others_and_skips_dead_levels() -> None:
    book = _book((1, SELL, 100, 1, "a"), (2, SELL, 100, 2, "a"), (3, SELL, 100, 3, "a"))
    assert book.remove(2) == 2
    assert book.remove(2) is None
    assert book.depth(SELL) == [(100, 4, 2)]
    out: list[Fill[int]] = []
    book.match(BUY, 100, 10, "x", True, out)
    assert out == [(1, 1), (3, 3)]
    assert book.best(SELL) is None and book.depth(SELL) == []
    # a level holding only cancelled orders: not best, no depth, and nothing trades against it
    book = _book((4, SELL, 100, 1, "a"), (5, SELL, 101, 1, "a"))
    assert book.remove(4) == 1
    assert book.best(SELL) == 101 and book.depth(SELL) == [(101, 1, 1)]
    out.clear()
    assert book.match(BUY, 100, 1, "x", True, out) == 1 and out == []
    assert not book.fillable(BUY, 100, 1, "x", True)
    assert book.place(6, BUY, 100, 1, "x", True, out) == 1 and out == []
    assert book.best(BUY) == 100 and book.best(SELL) == 101


def test_compaction_bounds_the_dead_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book_module, "_COMPACT_MIN", 8)
    book = _book(*[(i, BUY, 50 + i % 3, 1, "a") for i in range(300)])
    for i in range(1, 8):
        book.remove(i)
    assert _entries(book) == 300  # lazy: the dead entries stay ...
    book.remove(8)
    assert _entries(book) == 292  # ... until the cancels reach the budget
    for i in range(9, 299):  # next budget: twice the live orders then
        book.remove(i)
        assert _entries(book) <= 292
    assert list(book.orders(BUY)) == [(299, 1), (0, 1)]  # prices 52 and 50
    assert book.depth(BUY) == [(52, 1, 1), (50, 1, 1)]
    book.compact()
    assert _entries(book) == 2 and len(book._bid_keys) == 2


def test_reduce_keeps_priority_and_removes_at_zero() -> None:
    book = _book((1, BUY, 10, 5, "a"), (2, BUY, 10, 5, "b"))
    assert book.reduce(1, 4) == 1
    assert [oid for oid, _ in book.orders(BUY)] == [1, 2]
    assert book.reduce(1, 1) == 0
    assert 1 not in book and book.depth(BUY) == [(10, 5, 1)]
    with pytest.raises(ValueError):
        book.reduce(2, 6)
    with pytest.raises(KeyError):
        book.reduce(1, 1)


def test_self_trade_prevention_cancels_resting_and_continues() -> None:
    book = _book((1, SELL, 100, 5, "me"), (2, SELL, 100, 5, "you"))
    out: list[Fill[int]] = []
    assert book.match(BUY, 100, 5, "me", True, out) == 0
    assert out == [(1, 0), (2, 5)]
    assert len(book) == 0 and not book
    book = _book((1, SELL, 100, 5, "me"))
    out.clear()
    assert book.match(BUY, 100, 5, "me", False, out) == 0  # STP off: trades
    assert out == [(1, 5)]


def test_fillable_counts_only_crossing_liquidity_of_other_accounts() -> None:
    book = _book((1, SELL, 100, 5, "me"), (2, SELL, 101, 5, "you"), (3, SELL, 103, 5, "you"))
    assert book.fillable(BUY, 101, 10, "x", True)
    assert not book.fillable(BUY, 101, 11, "x", True)
    assert not book.fillable(BUY, 101, 10, "me", True)
    assert book.fillable(BUY, 101, 10, "me", False)
    assert not book.fillable(SELL, 1, 1, "x", True)
    book.remove(2)
    assert not book.fillable(BUY, 101, 10, "x", True)


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


class _NaiveBook:
    """The reference: a flat list of resting orders, sorted on every match."""

    def __init__(self) -> None:
        self.orders: list[list[int | str]] = []  # [seq, id, side, price, lots, account]
        self.seq = 0

    def place(self, oid: int, side: int, price: int, lots: int, account: str, stp: bool,
              rest: bool) -> tuple[list[tuple[int, int]], int]:
        fills: list[tuple[int, int]] = []
        book = sorted((o for o in self.orders if o[2] != side),
                      key=lambda o: (o[3] if side == BUY else -int(o[3]), o[0]))
        for maker in book:
            crosses = maker[3] <= price if side == BUY else maker[3] >= price
            if not lots or not crosses:
                break
            if stp and maker[5] == account:
                self.orders.remove(maker)
                fills.append((int(maker[1]), 0))
                continue
            got = min(lots, int(maker[4]))
            maker[4] = int(maker[4]) - got
            lots -= got
            fills.append((int(maker[1]), got))
            if not maker[4]:
                self.orders.remove(maker)
        if rest and lots:
            self.seq += 1
            self.orders.append([self.seq, oid, side, price, lots, account])
        return fills, lots

    def depth(self, side: int) -> list[tuple[int, int, int]]:
        levels: dict[int, list[int]] = {}
        for o in self.orders:
            if o[2] == side:
                levels.setdefault(int(o[3]), []).append(int(o[4]))
        return [(p, sum(q), len(q)) for p, q in sorted(levels.items(), reverse=side == BUY)]


book_ops = st.lists(st.one_of(
    st.tuples(st.just("place"), st.integers(0, 1), st.integers(95, 105), st.integers(1, 9),
              st.sampled_from("abc"), st.booleans(), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("reduce"), st.integers(0, 40), st.integers(1, 9)),
), max_size=120)


@settings(max_examples=300, deadline=None)
@given(book_ops)
def test_book_agrees_with_a_naive_model(ops: list[tuple[object, ...]]) -> None:
    book_module_min = book_module._COMPACT_MIN
    book_module._COMPACT_MIN = 3  # compact often
    try:
        book: OrderBook[int] = OrderBook()
        naive = _NaiveBook()
        for n, op in enumerate(ops):
            if op[0] == "place":
                _, side, price, lots, account, stp, rest = op
                out: list[Fill[int]] = []
                left = (book.place(n, side, price, lots, account, stp, out) if rest
                        else book.match(side, price, lots, account, stp, out))
                assert (out, left) == naive.place(n, side, price, lots, account, stp, rest)
            elif op[0] == "cancel":
                target = next((o for o in naive.orders if o[1] == op[1]), None)
                assert book.remove(op[1]) == (None if target is None else target[4])
                if target is not None:
                    naive.orders.remove(target)
            else:
                target = next((o for o in naive.orders if o[1] == op[1]), None)
                if target is None or op[2] > target[4]:
                    continue
                target[4] = int(target[4]) - op[2]
                assert book.reduce(op[1], op[2]) == target[4]
                if not target[4]:
                    naive.orders.remove(target)
            for side in (BUY, SELL):
                assert book.depth(side, 100) == naive.depth(side)
                assert book.best(side) == (naive.depth(side) or [(None,)])[0][0]
            assert len(book) == len(naive.orders)
    finally:
        book_module._COMPACT_MIN = book_module_min


def test_best_prices_follow_emptied_levels_and_compaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crossing test uses the cached best prices: they must follow a level that an exact
    fill leaves empty, a level that matching deletes, a dead-only level and compaction."""
    monkeypatch.setattr(book_module, "_COMPACT_MIN", 2)
    book = _book((1, SELL, 100, 2, "a"), (2, SELL, 101, 3, "a"))
    out: list[Fill[int]] = []
    assert book.place(3, BUY, 100, 2, "x", True, out) == 0  # exact fill: level 100 left empty
    assert out == [(1, 2)] and book.best(SELL) == 101 and book.depth(SELL) == [(101, 3, 1)]
    out.clear()
    assert book.place(4, BUY, 100, 1, "x", True, out) == 1 and out == []  # 100 is empty: rests
    assert book.best(BUY) == 100 and book.best(SELL) == 101
    out.clear()
    assert book.place(5, SELL, 100, 1, "y", True, out) == 0 and out == [(4, 1)]
    assert book.best(BUY) is None
    assert book.place(6, SELL, 99, 1, "y", True, out) == 1  # no bids left: rests
    assert book.best(SELL) == 99
    book.add(7, BUY, 98, 1, "z")
    assert book.remove(6) == 1 and book.remove(2) == 3  # the second cancel compacts
    assert book.best(SELL) is None and _entries(book) == 1
    out.clear()
    assert book.place(8, BUY, 200, 1, "x", True, out) == 1 and out == []  # no asks: rests
    assert book.best(BUY) == 200 and book.match(SELL, 199, 2, "y", True, out) == 1
    assert out == [(8, 1)] and 8 not in book and book.best(BUY) == 98
