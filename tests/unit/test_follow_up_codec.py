"""`streams.codec` against the reference encoder `schemas.envelope`."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from domain.matching import events
from schemas.envelope import caused_by, decode, encode, headers, new_envelope
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
    Side,
    SubmitOrder,
    TimeInForce,
    TradeExecuted,
)
from streams import codec

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def samples(rng: random.Random) -> list[Any]:
    t = T0 + timedelta(microseconds=rng.randrange(10**9))
    start = T0 + timedelta(hours=rng.randrange(48))
    end = start + timedelta(minutes=15)
    oid, tid = uuid.UUID(int=rng.getrandbits(128)), uuid.uuid4()
    qty = Decimal(rng.randrange(1, 10**6)) / 1000
    price = Decimal(rng.randrange(-50_000, 50_000)) / 100
    side = rng.choice(list(Side))
    common = {"order_id": oid, "account": "acct", "site": "site-1", "market": "EPEX"}
    return [
        SubmitOrder(order_id=oid, account="a", site="s", market="EPEX", side=side,
                    quantity_mwh=qty, limit_price_eur_mwh=price,
                    time_in_force=rng.choice(list(TimeInForce)), delivery_start=start,
                    delivery_end=end, submitted_at=t,
                    client_order_id=rng.choice([None, "c-1", "x" * 64])),
        CancelOrder(order_id=oid, site="s", market="m", requested_at=t),
        ModifyOrder(order_id=oid, site="s", market="m", new_quantity_mwh=qty,
                    requested_at=t.astimezone(timezone(timedelta(hours=2)))),
        ModifyOrder(order_id=oid, site="s", market="m", new_limit_price_eur_mwh=price,
                    requested_at=t),
        OrderAccepted(**common, side=side, quantity_mwh=qty, limit_price_eur_mwh=price,
                      time_in_force=TimeInForce.IOC, delivery_start=start, delivery_end=end,
                      accepted_at=t),
        OrderRejected(order_id=oid, site="s", market="m", stage="risk", reason="rate_limited",
                      detail="many", rejected_at=t),
        OrderModified(**common, quantity_mwh=qty, limit_price_eur_mwh=price,
                      remaining_quantity_mwh=qty, lost_priority=True, modified_at=t),
        OrderPartiallyFilled(**common, trade_id=tid, side=side, fill_quantity_mwh=qty,
                             fill_price_eur_mwh=price, filled_quantity_mwh=qty,
                             remaining_quantity_mwh=qty, executed_at=t),
        OrderFilled(**common, trade_id=tid, side=side, fill_quantity_mwh=qty,
                    fill_price_eur_mwh=price, filled_quantity_mwh=qty,
                    remaining_quantity_mwh=Decimal("0.000"), executed_at=t),
        OrderCancelled(**common, remaining_quantity_mwh=qty, reason="ioc_remainder",
                       cancelled_at=t),
        OrderExpired(**common, remaining_quantity_mwh=qty, expired_at=t),
        TradeExecuted(trade_id=tid, market="m", delivery_start=start, delivery_end=end,
                      quantity_mwh=qty, price_eur_mwh=price, buy_order_id=oid,
                      sell_order_id=tid, buy_account="a", sell_account="b", buy_site="s1",
                      sell_site="s2", aggressor_side=side, price_rule="maker",
                      executed_at=t),
    ]


def test_follow_up_equals_caused_by() -> None:
    rng = random.Random(8)
    for _ in range(200):
        for payload in samples(rng):
            parent = new_envelope(payload, occurred_at=T0, source="test",
                                  correlation_id=rng.choice([None, uuid.uuid4()]))
            at = rng.choice([None, T0 + timedelta(microseconds=rng.randrange(10**7))])
            key, value, hdrs = codec.follow_up(codec.Parent(parent), payload, "src", at)
            env = decode(value)
            assert uuid.UUID(str(env.event_id)).version == 4
            ref = caused_by(parent, payload, source="src", occurred_at=at)
            assert value == encode(ref.model_copy(update={"event_id": env.event_id}))
            assert key == ref.key.encode() and hdrs == headers(ref)


def test_trade_id_is_uuid5() -> None:
    rng = random.Random(9)
    for _ in range(500):
        oid, filled = uuid.UUID(int=rng.getrandbits(128)), rng.randrange(10**9)
        got = events.trade_id(oid, filled)
        assert got == uuid.uuid5(events.TRADE_NAMESPACE, f"{oid}:{filled}")
        assert str(got) == str(uuid.uuid5(events.TRADE_NAMESPACE, f"{oid}:{filled}"))


def test_event_builders_fill_every_field_in_order() -> None:
    for build in (events._accepted, events._rejected, events._modified, events._filled,
                  events._partially_filled, events._trade, events._cancelled, events._expired):
        assert build.plain and build.names == tuple(build.cls.model_fields)
