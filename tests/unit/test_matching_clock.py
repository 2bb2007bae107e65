"""The matching processor expires resting orders when the event-time clock passes their gate
closure, without waiting for another command (`streams.trading.matching`, no Kafka)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.clock import ClockTicked
from schemas.envelope import decode, encode, new_envelope
from schemas.trading import OrderAccepted, OrderExpired, Side, SubmitOrder
from streams.runtime import Output
from streams.trading.matching import MatchingProcessor

T0 = datetime(2023, 6, 1, 10, 0, tzinfo=UTC)
START = T0 + timedelta(hours=1)  # gate closure 5 min before: 10:55


@dataclass
class FakeRecord:
    topic: str
    value: bytes
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp: int = 0


def rec(topic: str, payload: Any) -> FakeRecord:
    return FakeRecord(topic, encode(new_envelope(payload, occurred_at=T0, source="test")))


def emitted(out: Output) -> list[Any]:
    return [decode(e.value).payload for e in out.emits]


def test_a_clock_tick_after_gate_closure_expires_the_resting_order() -> None:
    mp = MatchingProcessor()
    mp.restore(0, {})
    order = SubmitOrder(order_id=uuid.uuid4(), account="a", site="s",
                        market="EPEX_AT_INTRADAY_15MIN", side=Side.BUY,
                        quantity_mwh=Decimal("1.0"), limit_price_eur_mwh=Decimal("50.00"),
                        delivery_start=START, delivery_end=START + timedelta(minutes=15),
                        submitted_at=T0)
    first = Output()
    mp.handle(0, [rec("trading.matching-inbox.v1", order)], first)
    assert [type(p) for p in emitted(first)] == [OrderAccepted]
    before = Output()
    mp.handle(0, [rec("system.clock.v1",
                      ClockTicked(at=START - timedelta(minutes=6), clock="wall"))], before)
    assert before.emits == []
    after = Output()
    mp.handle(0, [rec("system.clock.v1",
                      ClockTicked(at=START - timedelta(minutes=5), clock="wall"))], after)
    expired = emitted(after)
    assert len(expired) == 1 and isinstance(expired[0], OrderExpired)
    assert expired[0].order_id == order.order_id
    assert after.state[str(order.order_id).encode()] is None  # gone from the changelog
    assert after.emits[0].key == b"s"
