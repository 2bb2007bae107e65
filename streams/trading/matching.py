"""Wiring of the matching engine (keyed by market; one engine per input partition).

Consumes ``trading.matching-inbox.v1`` (risk-approved commands), runs
`domain.matching.MatchingEngine.handle` in the command's event time and publishes the order
lifecycle events to ``trading.order-events.v1`` (key site) and trades to ``trading.trades.v1``
(key market). The resting orders are the processor's state (changelog keyed by order id), so a
trade, both order updates, the book change and the input offset commit in ONE Kafka
transaction (`streams.runtime`); after a restart the book of each partition is restored from
that log and resumes exactly where it stopped.

It also follows ``system.clock.v1``: a `ClockTicked` expires the resting orders whose gate
closure has passed (``OrderExpired``) without waiting for the next command to the partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from domain.matching.engine import MatchingEngine
from infra.metrics import ORDERS, TRADES
from infra.settings import Settings
from schemas.catalog import CLOCK, MATCHING_INBOX, ORDER_EVENTS_TOPIC
from schemas.catalog import TRADES as TRADES_TOPIC
from schemas.clock import ClockTicked
from schemas.trading import ORDER_COMMANDS, OrderRejected, TradeExecuted
from streams.codec import Parent, follow_up
from streams.runtime import Emit, Output, Processor, Runtime
from streams.trading.risk import command_time

NAME = "matching"
SOURCE = "streams.matching"
ACCEPTED: tuple[type, ...] = (*ORDER_COMMANDS, ClockTicked)


class MatchingProcessor(Processor):
    name = NAME
    inputs = (MATCHING_INBOX.name, CLOCK.name)
    partitions = MATCHING_INBOX.partitions

    def __init__(self) -> None:
        self.engines: dict[int, MatchingEngine] = {}
        self._trades: dict[str, Any] = {}  # Prometheus children by market (labels() is slow)
        self._rejected: dict[str, Any] = {}  # ... by reason

    def restore(self, partition: int, state: dict[bytes, bytes]) -> None:
        engine = MatchingEngine()
        engine.restore(orjson.loads(v) for v in state.values())
        self.engines[partition] = engine

    def revoke(self, partition: int) -> None:
        self.engines.pop(partition, None)

    def handle(self, partition: int, records: Sequence[Any], out: Output) -> None:
        engine = self.engines.setdefault(partition, MatchingEngine())
        touched: set[Any] = set()
        emits = out.emits
        for record in records:
            envelope = self.decode(record, out, ACCEPTED)
            if envelope is None:
                continue
            command = envelope.payload
            parent = Parent(envelope)
            if isinstance(command, ClockTicked):
                for expired in engine.expire(command.at):
                    emits.append(Emit(ORDER_EVENTS_TOPIC.name,
                                      *follow_up(parent, expired, SOURCE, command.at)))
                    touched.add(expired.order_id)
                continue
            for payload in engine.handle(command, command_time(command)):
                key, value, headers = follow_up(parent, payload, SOURCE)
                if type(payload) is TradeExecuted:
                    emits.append(Emit(TRADES_TOPIC.name, key, value, headers))
                    counter = self._trades.get(payload.market)
                    if counter is None:
                        counter = self._trades[payload.market] = TRADES.labels(payload.market)
                    counter.inc()
                    continue
                emits.append(Emit(ORDER_EVENTS_TOPIC.name, key, value, headers))
                if type(payload) is OrderRejected:
                    counter = self._rejected.get(payload.reason)
                    if counter is None:
                        counter = self._rejected[payload.reason] = ORDERS.labels(
                            "matching", payload.reason)
                    counter.inc()
                order_id = getattr(payload, "order_id", None)
                if order_id is not None:
                    touched.add(order_id)
        for order_id in touched:
            view = engine.open_order(order_id)
            out.state[str(order_id).encode()] = (
                None if view is None else orjson.dumps(view.to_dict()))


def create_runtime(settings: Settings) -> Runtime:
    return Runtime(MatchingProcessor(), settings.bootstrap)
