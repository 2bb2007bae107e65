"""`publish_ticks` on the real broker: ticks go out as record batches (many per call), every
market's ticks stay in delivery order on their partition, and a replay's clock advances after
the ticks of each new delivery hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateways.market_data.service import publish_ticks
from infra.kafka_io import make_producer
from schemas.catalog import CLOCK, PRICE_TICKS
from schemas.envelope import MessageDecodeError, decode
from tests.integration.helpers import read_until, real_ticks

pytestmark = pytest.mark.integration
START = datetime(2023, 1, 1, tzinfo=UTC)


async def test_a_year_of_two_markets_in_order_with_the_replay_clock(services) -> None:
    a = real_ticks("TEST_PUB_A_60MIN", START, START + timedelta(days=120))
    b = real_ticks("TEST_PUB_B_60MIN", START, START + timedelta(days=120))
    ticks = sorted(a + b, key=lambda t: t.delivery_start)  # a replay's order
    clock_from = START + timedelta(days=119, hours=20)
    source = "test.publish-ticks"
    producer = make_producer(bootstrap=services.bootstrap)
    await producer.start()
    try:
        assert await publish_ticks(producer, ticks, source=source,
                                   clock_from=clock_from) == len(ticks)
    finally:
        await producer.stop()

    def mine(records: list) -> list:  # other tests leave malformed records on the topics
        out: list = []
        for r in records:
            if source.encode() not in r.value:
                continue
            try:
                envelope = decode(r.value)
            except MessageDecodeError:
                continue
            if envelope.source == source:
                out.append(envelope)
        return out

    got = mine(await read_until(services.bootstrap, PRICE_TICKS.name,
                                lambda rs: len(mine(rs)) >= len(ticks), decode_values=False))
    assert len(got) == len(ticks) > 5000
    for market, sent in (("TEST_PUB_A_60MIN", a), ("TEST_PUB_B_60MIN", b)):
        seen = [m.payload for m in got if m.payload.market == market]
        assert [(t.delivery_start, t.price_eur_mwh) for t in seen] == \
               [(t.delivery_start, t.price_eur_mwh) for t in sent]
    hours = sorted({t.delivery_start for t in ticks if t.delivery_start >= clock_from})
    clocks = mine(await read_until(services.bootstrap, CLOCK.name,
                                   lambda rs: len(mine(rs)) >= len(hours) * CLOCK.partitions,
                                   decode_values=False))
    assert sorted(c.payload.at for c in clocks) == sorted(hours * CLOCK.partitions)
    assert all(c.payload.clock == "replay" for c in clocks)
