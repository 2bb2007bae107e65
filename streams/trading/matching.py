"""Wiring of the matching engine (keyed by market; one engine per input partition).

Consumes ``trading.matching-inbox.v1`` (risk-approved commands), runs
`domain.matching.MatchingEngine.handle` in the command's event time and publishes the order
lifecycle events to ``trading.order-events.v1`` (key site) and trades to ``trading.trades.v1``
(key market). The resting orders are kept in a faust table keyed by order id whose changelog
is written to the partition of the command, so a trade, both order updates and the book change
commit in ONE Kafka transaction (exactly-once); after a restart the book of each partition is
restored from that table (the log) and resumes exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

from domain.matching.engine import MatchingEngine
from infra.metrics import EVENTS, ORDERS, TRADES
from infra.settings import Settings
from schemas.catalog import MATCHING_INBOX, ORDER_EVENTS_TOPIC, TRADES as TRADES_TOPIC
from schemas.envelope import caused_by, encode, headers
from schemas.trading import ORDER_COMMANDS, OrderRejected, TradeExecuted
from streams.common import create_faust_app, decode_or_dead_letter
from streams.trading.risk import command_time

NAME = "matching"
SOURCE = "streams.matching"


def create_app(settings: Settings, web_port: int | None = None) -> faust.App:
    app = create_faust_app(NAME, settings, web_port=web_port)
    inbox = app.topic(MATCHING_INBOX.name, key_serializer="raw", value_serializer="raw",
                      internal=False)
    order_events = app.topic(ORDER_EVENTS_TOPIC.name, key_serializer="raw",
                             value_serializer="raw", internal=False)
    trades = app.topic(TRADES_TOPIC.name, key_serializer="raw", value_serializer="raw",
                       internal=False)
    dlq = app.topic(MATCHING_INBOX.dlq, key_serializer="raw", value_serializer="raw",
                    internal=False)
    resting = app.Table("resting-orders", default=None, partitions=MATCHING_INBOX.partitions)
    engines: dict[int, MatchingEngine] = {}

    def engine_for(partition: int) -> MatchingEngine:
        engine = engines.get(partition)
        if engine is None:  # first command since start/rebalance: rebuild from the changelog
            engine = MatchingEngine()
            rows = [orjson.loads(v) for v in resting.values() if v]
            engine.restore([r["order"] for r in rows if r["partition"] == partition])
            engines[partition] = engine
        return engine

    @app.on_partitions_revoked.connect
    async def revoked(app: Any, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == MATCHING_INBOX.name:
                engines.pop(tp.partition, None)

    @app.agent(inbox, name="matching")
    async def process(stream: Any) -> None:
        async for event in stream.events():
            EVENTS.labels(NAME, MATCHING_INBOX.name).inc()
            envelope = await decode_or_dead_letter(event, NAME, dlq, ORDER_COMMANDS)
            if envelope is None:
                continue
            partition = event.message.partition
            engine = engine_for(partition)
            command = envelope.payload
            outputs = engine.handle(command, command_time(command))
            touched = set()
            for payload in outputs:
                out = caused_by(envelope, payload, source=SOURCE)
                if isinstance(payload, TradeExecuted):
                    await trades.send(key=payload.market.encode(), value=encode(out),
                                      headers=headers(out))
                    TRADES.labels(payload.market).inc()
                    continue
                await order_events.send(key=payload.site.encode(), value=encode(out),  # type: ignore[attr-defined]
                                        headers=headers(out))
                if isinstance(payload, OrderRejected):
                    ORDERS.labels("matching", payload.reason).inc()
                order_id = getattr(payload, "order_id", None)
                if order_id is not None:
                    touched.add(order_id)
            for order_id in touched:
                key = str(order_id).encode()
                view = engine.open_order(order_id)
                if view is None:
                    if resting.get(key) is not None:
                        del resting[key]
                else:
                    resting[key] = orjson.dumps({"partition": partition, "order": view.to_dict()})

    return app
