"""A price-time priority limit order book on integers (ticks, lots); one per delivery period.

The layout is chosen for CPython speed (`bench/matching.py` runs it beside a C++ book):

* The id index ``order id -> open lots`` holds the live resting orders, and only them.
* A side is ``dict key -> level`` plus an ascending list of its keys (``bisect``) whose *last*
  element is the best price: a bid's key is its price, an ask's key is minus its price. So both
  sides take their best level from the end of a list, and an incoming order crosses the
  opposite side while ``key >= -its own key``.
* A level is a deque of ``(order id, account)`` in time priority, nothing else: immutable
  tuples of atoms (cheap to build, untracked by the cyclic GC after its first pass) and no
  per-level totals to keep up on the hot paths (depth and the FOK check add them up).
* Cancels are lazy and O(1): the order leaves the index; its entry, now *dead*, stays in the
  deque until matching reaches it. Matching drops dead entries and levels that run empty, so a
  level may hold only dead entries; the read methods skip those, and an incoming order that
  only "crosses" them does not trade. To bound memory, all levels are compacted (dead entries
  and empty levels dropped) once the cancels since the last compaction exceed twice the live
  orders then (at least `_COMPACT_MIN`): O(1) amortised per cancel.

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

Fill = tuple[K, int]
"""(resting order id, lots traded); 0 lots: cancelled by self-trade prevention."""

Level = deque[tuple[Any, Hashable]]
"""``(order id, account)`` of the orders at one price, in time priority (dead ones included)."""


class OrderBook(Generic[K]):
    """Integer price-time priority book; ids are unique per placement (see the module doc)."""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "_cancel_budget", "_index")

    def __init__(self) -> None:
        self._bids: dict[int, Level] = {}  # key = price
        self._asks: dict[int, Level] = {}  # key = -price
        self._bid_keys: list[int] = []  # ascending: best last
        self._ask_keys: list[int] = []
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
            levels, keys, key = self._asks, self._ask_keys, -price
        else:
            levels, keys, key = self._bids, self._bid_keys, price
        level = levels.get(key)
        if level is None:
            level = levels[key] = deque()
            insort(keys, key)
        level.append((order_id, account))
        self._index[order_id] = lots

    def match(
        self, side: int, limit: int, lots: int, account: Hashable, stp: bool,
        out: list[Fill[K]],
    ) -> int:
        """Match an incoming order without resting it (IOC, FOK); returns the lots left over
        (see `place` for `out`)."""
        if side:
            keys = self._bid_keys
            if lots and keys and keys[-1] >= limit:
                return self._take(self._bids, keys, limit, lots, account, stp, out)
        else:
            keys = self._ask_keys
            if lots and keys and keys[-1] >= -limit:
                return self._take(self._asks, keys, -limit, lots, account, stp, out)
        return lots

    def place(
        self, order_id: K, side: int, price: int, lots: int, account: Hashable, stp: bool,
        out: list[Fill[K]],
    ) -> int:
        """Match an incoming GTC order of `lots` > 0 against the opposite side, then rest what
        is left at the back of its level; returns the lots rested.

        Appends ``(resting order id, lots)`` to `out` per fill, in priority order (a resting
        order filled completely leaves the book); with `stp`, a resting order of `account` is
        cancelled instead (it leaves the book) and appended with 0 lots. (`add` and `match`
        are its two halves; this is the hot path, so it inlines them.)
        """
        if side:
            keys = self._bid_keys
            threshold = price
        else:
            keys = self._ask_keys
            threshold = -price
        if keys and keys[-1] >= threshold:  # crosses: the loop of `_take`, inlined
            levels = self._bids if side else self._asks
            index = self._index
            while True:
                key = keys[-1]
                level = levels[key]
                while level:
                    maker, maker_account = level[0]
                    open_lots = index.get(maker)
                    if open_lots is None:  # cancelled
                        level.popleft()
                    elif stp and maker_account == account:
                        level.popleft()
                        del index[maker]
                        out.append((maker, 0))
                    elif open_lots > lots:
                        index[maker] = open_lots - lots
                        out.append((maker, lots))
                        return 0
                    else:
                        level.popleft()
                        del index[maker]
                        out.append((maker, open_lots))
                        lots -= open_lots
                        if not lots:
                            if not level:
                                del levels[key]
                                keys.pop()
                            return 0
                del levels[key]
                keys.pop()
                if not keys or keys[-1] < threshold:
                    break
        if side:
            levels, keys, key = self._asks, self._ask_keys, -price
        else:
            levels, keys, key = self._bids, self._bid_keys, price
        rest = levels.get(key)
        if rest is None:
            rest = levels[key] = deque()
            insort(keys, key)
        rest.append((order_id, account))
        self._index[order_id] = lots
        return lots

    def _take(
        self, levels: dict[int, Level], keys: list[int], threshold: int, lots: int,
        account: Hashable, stp: bool, out: list[Fill[K]],
    ) -> int:
        """The matching loop over one side (`place`); `threshold`: the lowest crossing key."""
        index = self._index
        append = out.append
        while True:
            key = keys[-1]
            level = levels[key]
            while level:
                maker, maker_account = level[0]
                open_lots = index.get(maker)
                if open_lots is None:  # cancelled
                    level.popleft()
                elif stp and maker_account == account:
                    level.popleft()
                    del index[maker]
                    append((maker, 0))
                elif open_lots > lots:
                    index[maker] = open_lots - lots
                    append((maker, lots))
                    return 0
                else:
                    level.popleft()
                    del index[maker]
                    append((maker, open_lots))
                    lots -= open_lots
                    if not lots:
                        if not level:
                            del levels[key]
                            keys.pop()
                        return 0
            del levels[key]
            keys.pop()
            if not keys or keys[-1] < threshold:
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
        for levels, keys in ((self._bids, self._bid_keys), (self._asks, self._ask_keys)):
            for key in keys:
                level = levels[key]
                live = [entry for entry in level if entry[0] in index]
                if not live:
                    del levels[key]
                elif len(live) < len(level):
                    levels[key] = deque(live)
            keys[:] = sorted(levels)
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
        threshold = limit if side else -limit
        for key, level in self._levels(1 - side):
            if key < threshold:
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
        sign = 1 if side == BUY else -1
        rows: list[tuple[int, int, int]] = []
        for key, level in self._levels(side):
            if len(rows) >= levels:
                break
            live = [index[maker] for maker, _ in level if maker in index]
            if live:
                rows.append((sign * key, sum(live), len(live)))
        return rows

    def orders(self, side: int) -> Iterator[tuple[K, int]]:
        """(order id, open lots) of the live orders of `side`, best price first, then time."""
        index = self._index
        for _, level in self._levels(side):
            for maker, _ in level:
                if maker in index:
                    yield maker, index[maker]

    def _levels(self, side: int) -> Iterator[tuple[int, Level]]:
        """(key, level) of `side`, best first (levels may hold only dead entries)."""
        levels, keys = (self._asks, self._ask_keys) if side else (self._bids, self._bid_keys)
        for key in reversed(keys):
            yield key, levels[key]
