"""A price-time priority limit order book on integers (ticks, lots); one per delivery period.

Each side keeps ``dict key -> Level`` plus an ascending list of keys (``bisect``) whose *last*
element is the best price: a bid's key is its price, an ask's key is minus its price. So both
sides pop their best level from the end of a list, and an incoming order crosses the opposite
side while ``key >= -own_key``.

A level is a deque in time priority. Cancels are lazy and O(1): the order is dropped from the
id index, flagged dead and subtracted from its level's totals; the dead entry stays in the deque
until matching reaches it (or the level is compacted when dead entries dominate). A level with no
live order is removed at once, so the best level of a side always holds a live order.

Self-trade prevention (when asked for): a resting order of the incoming order's account is
cancelled (reported with 0 lots) and matching continues behind it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Hashable, Iterator
from itertools import islice
from typing import Generic, TypeVar

BUY = 0
SELL = 1

K = TypeVar("K", bound=Hashable)

_COMPACT_MIN_DEAD = 64


class BookOrder(Generic[K]):
    """A resting order: id, side (BUY/SELL), limit in ticks, open lots, account (STP scope)."""

    __slots__ = ("account", "live", "order_id", "price", "remaining", "side")

    def __init__(
        self, order_id: K, side: int, price: int, remaining: int, account: Hashable
    ) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.remaining = remaining
        self.account = account
        self.live = True

    def __repr__(self) -> str:
        side = "BUY" if self.side == BUY else "SELL"
        return f"BookOrder({self.order_id!r}, {side}, {self.remaining} @ {self.price})"


class Level(Generic[K]):
    """Orders at one price in time priority; `lots` and `live` count live orders only."""

    __slots__ = ("dead", "live", "lots", "orders")

    def __init__(self) -> None:
        self.orders: deque[BookOrder[K]] = deque()
        self.lots = 0
        self.live = 0
        self.dead = 0


class _Side(Generic[K]):
    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # key = sign * price
        self.levels: dict[int, Level[K]] = {}
        self.keys: list[int] = []


Fill = tuple[BookOrder[K], int]
"""(resting order, lots traded); 0 lots: cancelled by self-trade prevention."""


class OrderBook(Generic[K]):
    """Integer price-time priority book. Order ids must be unique among resting orders."""

    __slots__ = ("_index", "_sides")

    def __init__(self) -> None:
        self._sides: tuple[_Side[K], _Side[K]] = (_Side(1), _Side(-1))
        self._index: dict[K, BookOrder[K]] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._index

    def get(self, order_id: K) -> BookOrder[K] | None:
        return self._index.get(order_id)

    def add(self, order: BookOrder[K]) -> None:
        """Rest `order` at the back of its price level (it does not match here)."""
        side = self._sides[order.side]
        key = side.sign * order.price
        level = side.levels.get(key)
        if level is None:
            level = side.levels[key] = Level()
            insort(side.keys, key)
        level.orders.append(order)
        level.live += 1
        level.lots += order.remaining
        self._index[order.order_id] = order

    def remove(self, order_id: K) -> BookOrder[K] | None:
        """Cancel a resting order in O(1) (lazily); None when it is not in the book."""
        order = self._index.pop(order_id, None)
        if order is None:
            return None
        order.live = False
        side = self._sides[order.side]
        key = side.sign * order.price
        level = side.levels[key]
        level.live -= 1
        level.lots -= order.remaining
        if not level.live:
            del side.levels[key]
            del side.keys[bisect_left(side.keys, key)]
            return order
        level.dead += 1
        if level.dead >= _COMPACT_MIN_DEAD and level.dead > level.live:
            level.orders = deque(o for o in level.orders if o.live)
            level.dead = 0
        return order

    def reduce(self, order_id: K, lots: int) -> BookOrder[K]:
        """Take `lots` off a resting order keeping its priority; removed when nothing is left."""
        order = self._index[order_id]
        if not 0 < lots <= order.remaining:
            raise ValueError(f"cannot reduce {order!r} by {lots} lots")
        if lots == order.remaining:
            self.remove(order_id)
            order.remaining = 0
            return order
        side = self._sides[order.side]
        side.levels[side.sign * order.price].lots -= lots
        order.remaining -= lots
        return order

    def match(
        self, side: int, limit: int, lots: int, account: Hashable, stp: bool,
        out: list[Fill[K]],
    ) -> int:
        """Match an incoming order against the opposite side; returns the lots left over.

        Appends ``(resting order, lots)`` to `out` per fill in priority order (a filled resting
        order has ``remaining == 0`` and has left the book); with `stp`, a resting order of
        `account` is cancelled instead and appended with 0 lots (its ``remaining`` untouched).
        """
        opposite = self._sides[1 - side]
        levels = opposite.levels
        keys = opposite.keys
        index = self._index
        threshold = -limit if side == BUY else limit
        while lots and keys:
            key = keys[-1]
            if key < threshold:
                break
            level = levels[key]
            queue = level.orders
            while queue:
                maker = queue[0]
                if not maker.live:
                    queue.popleft()
                    level.dead -= 1
                    continue
                if stp and maker.account == account:
                    queue.popleft()
                    maker.live = False
                    level.live -= 1
                    level.lots -= maker.remaining
                    del index[maker.order_id]
                    out.append((maker, 0))
                    continue
                rest = maker.remaining
                if rest <= lots:
                    queue.popleft()
                    maker.live = False
                    maker.remaining = 0
                    level.live -= 1
                    level.lots -= rest
                    del index[maker.order_id]
                    out.append((maker, rest))
                    lots -= rest
                    if not lots:
                        break
                else:
                    maker.remaining = rest - lots
                    level.lots -= lots
                    out.append((maker, lots))
                    lots = 0
                    break
            if not level.live:
                del levels[key]
                keys.pop()
        return lots

    def fillable(self, side: int, limit: int, lots: int, account: Hashable, stp: bool) -> bool:
        """Whether an incoming order could fill `lots` completely right now (FOK check);
        with `stp`, resting orders of `account` do not count (they would be cancelled)."""
        opposite = self._sides[1 - side]
        threshold = -limit if side == BUY else limit
        for key in reversed(opposite.keys):
            if key < threshold:
                return False
            level = opposite.levels[key]
            if not stp:
                lots -= level.lots
            else:
                for order in level.orders:
                    if order.live and order.account != account:
                        lots -= order.remaining
            if lots <= 0:
                return True
        return False

    def best(self, side: int) -> int | None:
        """Best price (ticks) of `side`, None when empty."""
        s = self._sides[side]
        return s.sign * s.keys[-1] if s.keys else None

    def depth(self, side: int, levels: int = 10) -> list[tuple[int, int, int]]:
        """Up to `levels` best levels of `side` as (price ticks, open lots, live orders)."""
        s = self._sides[side]
        return [
            (s.sign * key, s.levels[key].lots, s.levels[key].live)
            for key in islice(reversed(s.keys), max(levels, 0))
        ]

    def orders(self, side: int) -> Iterator[BookOrder[K]]:
        """Live orders of `side`, best price first, then time priority."""
        s = self._sides[side]
        for key in reversed(s.keys):
            for order in s.levels[key].orders:
                if order.live:
                    yield order
