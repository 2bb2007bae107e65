"""A price-time priority limit order book on integers (ticks, lots); one per delivery period.

The layout is chosen for CPython speed (`bench/matching.py` runs it beside a C++ book):

* The id index ``order id -> open lots`` holds the live resting orders, and only them.
* A side is ``dict price -> level`` plus an ascending list of sort keys (``bisect``) whose
  *last* element is the best price: a bid's key is its price, an ask's key is minus its price,
  so both sides take their next best level from the end of a list. Each side also keeps its
  best price in an attribute (``_best_bid``/``_best_ask``; -inf/+inf when it has no level), so
  an incoming order is told to cross or not with one integer comparison, and the common case,
  crossing nothing, rests at once. The attributes change only where the best can: a new
  better level, a best level that matching deletes, compaction.
* A level is a deque of ``(order id, account)`` in time priority, nothing else: immutable
  tuples of atoms (cheap to build, untracked by the cyclic GC after its first pass) and no
  per-level totals to keep up on the hot paths (depth and the FOK check add them up).
* Cancels are lazy and O(1): the order leaves the index; its entry, now *dead*, stays in the
  deque until matching reaches it. Matching drops dead entries and levels that run empty, so a
  level may hold only dead entries, or none (an incoming order filled exactly by a level's
  last order leaves it; the next match or compaction drops it); the read methods skip those,
  and an incoming order that only "crosses" them does not trade. To bound memory, all levels
  are compacted (dead entries and empty levels dropped) once the cancels since the last
  compaction exceed twice the live orders then (at least `_COMPACT_MIN`): O(1) amortised per
  cancel.

CPython 3.11 notes for the hot path, `place`: each comparison that picks the path is followed
by a *short* jump (a branch over a few lines), because the interpreter only specialises a
comparison into its fast integer form when the jump right after it needs no ``EXTENDED_ARG``
(a jump over a long block leaves it on the slow generic compare for good). Hence its shape:
the two "rest without crossing" blocks first and short, the crossing loops after them, inline
(a method call per crossing order costs more than the loop's copy per side).

Because a dead entry is recognised by its id being absent from the index, an order id must not
be added again once it left the book (cancelled, filled, or cancelled by self-trade
prevention): use a fresh id per placement (the engine uses its priority sequence number).

Self-trade prevention (when asked for): a resting order of the incoming order's account is
cancelled (reported with 0 lots) and matching continues behind it.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Any, Generic, TypeVar

BUY = 0
SELL = 1

K = TypeVar("K", bound=Hashable)

_COMPACT_MIN = 4096
_NO_BID: Any = float("-inf")
"""`_best_bid` of a book without bids: every sell price is above it (typed Any: it stands in
for an int price)."""
_NO_ASK: Any = float("inf")
"""`_best_ask` of a book without asks: every buy price is below it."""

Fill = tuple[K, int]
"""(resting order id, lots traded); 0 lots: cancelled by self-trade prevention."""

Level = deque[tuple[Any, Hashable]]
"""``(order id, account)`` of the orders at one price, in time priority (dead ones included)."""


class OrderBook(Generic[K]):
    """Integer price-time priority book; ids are unique per placement (see the module doc)."""

    __slots__ = ("_ask_keys", "_asks", "_best_ask", "_best_bid", "_bid_keys", "_bids",
                 "_cancel_budget", "_index")

    def __init__(self) -> None:
        self._bids: dict[int, Level] = {}  # price -> level
        self._asks: dict[int, Level] = {}
        self._bid_keys: list[int] = []  # bid prices, ascending: best last
        self._ask_keys: list[int] = []  # minus the ask prices, ascending: best last
        self._best_bid: int = _NO_BID  # best bid price, _NO_BID without bids
        self._best_ask: int = _NO_ASK  # best ask price, _NO_ASK without asks
        self._index: dict[K, int] = {}  # live resting order -> open lots
        self._cancel_budget = _COMPACT_MIN  # cancels until the next compaction

    def __len__(self) -> int:
        return len(self._index)

    def __bool__(self) -> bool:
        return bool(self._index)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._index

    def remaining(self, order_id: K) -> int | None:
        """Open lots of a resting order, None when it is not in the book."""
        return self._index.get(order_id)

    def add(self, order_id: K, side: int, price: int, lots: int, account: Hashable) -> None:
        """Rest an order of `lots` > 0 at the back of its price level (it does not match)."""
        if side:
            level = self._asks.get(price)
            if level is None:
                level = self._asks[price] = deque()
                insort(self._ask_keys, -price)
                if price < self._best_ask:
                    self._best_ask = price
        else:
            level = self._bids.get(price)
            if level is None:
                level = self._bids[price] = deque()
                insort(self._bid_keys, price)
                if price > self._best_bid:
                    self._best_bid = price
        level.append((order_id, account))
        self._index[order_id] = lots

    def match(
        self, side: int, limit: int, lots: int, account: Hashable, stp: bool,
        out: list[Fill[K]],
    ) -> int:
        """Match an incoming order without resting it (IOC, FOK); returns the lots left over
        (see `place` for `out`)."""
        if lots and (limit <= self._best_bid if side else limit >= self._best_ask):
            no_id: Any = None  # never rests
            return self.place(no_id, side, limit, lots, account, stp, out, False)
        return lots

    def place(
        self, order_id: K, side: int, price: int, lots: int, account: Hashable, stp: bool,
        out: list[Fill[K]], rest: bool = True,
    ) -> int:
        """Match an incoming GTC order of `lots` > 0 against the opposite side, then rest what
        is left at the back of its level; returns the lots rested. (`rest` False, for `match`
        only, which calls it with an order that crosses: returns the lots left over instead.)

        Appends ``(resting order id, lots)`` to `out` per fill, in priority order (a resting
        order filled completely leaves the book); with `stp`, a resting order of `account` is
        cancelled instead (it leaves the book) and appended with 0 lots.

        This is the hot path: the common case, an order that crosses nothing, is `add`
        inlined, then come the two matching loops, one per side, mirrored.
        """
        if side:
            if price > self._best_bid:  # a sell above every bid: rest
                level = self._asks.get(price)
                if level is None:
                    level = self._asks[price] = deque()
                    insort(self._ask_keys, -price)
                    if price < self._best_ask:
                        self._best_ask = price
                level.append((order_id, account))
                self._index[order_id] = lots
                return lots
        elif price < self._best_ask:  # a buy below every ask: rest
            level = self._bids.get(price)
            if level is None:
                level = self._bids[price] = deque()
                insort(self._bid_keys, price)
                if price > self._best_bid:
                    self._best_bid = price
            level.append((order_id, account))
            self._index[order_id] = lots
            return lots
        index = self._index
        if side:  # a sell: down the bids from the best
            levels = self._bids
            best = self._best_bid
            while True:
                level = levels[best]
                while level:
                    maker, maker_account = level[0]
                    open_lots = index.get(maker)
                    if open_lots is None:  # cancelled
                        level.popleft()
                    elif stp and maker_account == account:  # self-trade prevention
                        level.popleft()
                        del index[maker]
                        out.append((maker, 0))
                    elif open_lots > lots:  # the incoming order is done, the maker rests on
                        index[maker] = open_lots - lots
                        out.append((maker, lots))
                        return 0
                    else:  # the maker is done
                        level.popleft()
                        del index[maker]
                        out.append((maker, open_lots))
                        lots -= open_lots
                        if not lots:
                            return 0  # (the level may be left empty: see the module doc)
                del levels[best]  # ran empty: the next best
                keys = self._bid_keys
                keys.pop()
                self._best_bid = best = keys[-1] if keys else _NO_BID
                if best < price:
                    break
        else:  # a buy: up the asks from the best
            levels = self._asks
            best = self._best_ask
            while True:
                level = levels[best]
                while level:
                    maker, maker_account = level[0]
                    open_lots = index.get(maker)
                    if open_lots is None:  # cancelled
                        level.popleft()
                    elif stp and maker_account == account:  # self-trade prevention
                        level.popleft()
                        del index[maker]
                        out.append((maker, 0))
                    elif open_lots > lots:  # the incoming order is done, the maker rests on
                        index[maker] = open_lots - lots
                        out.append((maker, lots))
                        return 0
                    else:  # the maker is done
                        level.popleft()
                        del index[maker]
                        out.append((maker, open_lots))
                        lots -= open_lots
                        if not lots:
                            return 0  # (the level may be left empty: see the module doc)
                del levels[best]
                keys = self._ask_keys
                keys.pop()
                self._best_ask = best = -keys[-1] if keys else _NO_ASK
                if best > price:
                    break
        if rest:
            self.add(order_id, side, price, lots, account)
        return lots

    def remove(self, order_id: K) -> int | None:
        """Cancel a resting order in O(1) (lazily); its open lots, None when not in the book."""
        lots = self._index.pop(order_id, None)
        if lots is not None:
            self._cancel_budget -= 1
            if not self._cancel_budget:
                self.compact()
        return lots

    def compact(self) -> None:
        """Drop the dead entries and the levels without a live order (see the module doc)."""
        index = self._index
        for levels in (self._bids, self._asks):
            for price, level in list(levels.items()):
                live = [entry for entry in level if entry[0] in index]
                if not live:
                    del levels[price]
                elif len(live) < len(level):
                    levels[price] = deque(live)
        self._bid_keys[:] = sorted(self._bids)
        self._ask_keys[:] = sorted(-price for price in self._asks)
        self._best_bid = self._bid_keys[-1] if self._bid_keys else _NO_BID
        self._best_ask = -self._ask_keys[-1] if self._ask_keys else _NO_ASK
        self._cancel_budget = max(2 * len(index), _COMPACT_MIN)

    def reduce(self, order_id: K, lots: int) -> int:
        """Take `lots` off a resting order keeping its priority; returns its open lots after
        (removed when 0). Raises KeyError (not resting) or ValueError (not 0 < lots <= open)."""
        open_lots = self._index[order_id]
        if not 0 < lots <= open_lots:
            raise ValueError(f"cannot reduce order {order_id!r} ({open_lots} lots) by {lots}")
        if lots == open_lots:
            self.remove(order_id)
            return 0
        self._index[order_id] = open_lots - lots
        return open_lots - lots

    def fillable(self, side: int, limit: int, lots: int, account: Hashable, stp: bool) -> bool:
        """Whether an incoming order could fill `lots` completely right now (FOK check);
        with `stp`, resting orders of `account` do not count (they would be cancelled)."""
        index = self._index
        for price, level in self._levels(1 - side):
            if (price < limit) if side else (price > limit):
                return False
            for maker, maker_account in level:
                if not stp or maker_account != account:
                    lots -= index.get(maker, 0)  # 0 for a dead entry
            if lots <= 0:
                return True
        return False

    def best(self, side: int) -> int | None:
        """Best price (ticks) of `side`, None when empty."""
        rows = self.depth(side, 1)
        return rows[0][0] if rows else None

    def depth(self, side: int, levels: int = 10) -> list[tuple[int, int, int]]:
        """Up to `levels` best levels of `side` as (price ticks, open lots, live orders)."""
        index = self._index
        rows: list[tuple[int, int, int]] = []
        for price, level in self._levels(side):
            if len(rows) >= levels:
                break
            live = [index[maker] for maker, _ in level if maker in index]
            if live:
                rows.append((price, sum(live), len(live)))
        return rows

    def orders(self, side: int) -> Iterator[tuple[K, int]]:
        """(order id, open lots) of the live orders of `side`, best price first, then time."""
        index = self._index
        for _, level in self._levels(side):
            for maker, _ in level:
                if maker in index:
                    yield maker, index[maker]

    def _levels(self, side: int) -> Iterator[tuple[int, Level]]:
        """(price, level) of `side`, best first (levels may hold only dead entries, or none)."""
        if side:
            asks = self._asks
            for key in reversed(self._ask_keys):
                yield -key, asks[-key]
        else:
            bids = self._bids
            for price in reversed(self._bid_keys):
                yield price, bids[price]
