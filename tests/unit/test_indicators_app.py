"""The indicators processor's outputs: exactly ``encode(caused_by(tick, update))`` but for the
random event id, and the state it writes to the changelog restores to the same fold."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.market.indicators import IndicatorConfig, IndicatorState, apply_tick
from schemas.envelope import caused_by, decode, encode, headers, new_envelope
from schemas.market import PriceTickReceived
from streams.indicators.app import SOURCE, IndicatorsProcessor
from streams.runtime import Output

Rec = namedtuple("Rec", "topic partition offset key value timestamp")
T0 = datetime(2023, 1, 1, tzinfo=UTC)


@settings(deadline=None, max_examples=50)
@given(prices=st.lists(st.floats(-500, 5000, allow_nan=False), min_size=1, max_size=30),
       volumes=st.lists(st.none() | st.floats(0, 100, allow_nan=False), min_size=30,
                        max_size=30),
       correlated=st.booleans())
def test_outputs_are_the_reference_encoding(prices, volumes, correlated) -> None:
    config = IndicatorConfig(ema_span=5, vwap_window_s=6 * 3600)
    processor = IndicatorsProcessor(config)
    envelopes = []
    for i, price in enumerate(prices):
        start = T0 + timedelta(hours=i)
        tick = PriceTickReceived(market="M", bidding_zone="AT", delivery_start=start,
                                 delivery_end=start + timedelta(hours=1), resolution="PT60M",
                                 price_eur_mwh=price, volume_mwh=volumes[i], data_source="t")
        envelopes.append(new_envelope(tick, occurred_at=start, source="test",
                                      correlation_id=envelopes[0].event_id
                                      if correlated and envelopes else None))
    records = [Rec("market.price-ticks.v1", 0, i, e.key.encode(), encode(e), 0)
               for i, e in enumerate(envelopes)]
    out = Output()
    processor.handle(0, records, out)

    state = IndicatorState(market="M")
    assert len(out.emits) == len(envelopes)
    for envelope, emit in zip(envelopes, out.emits, strict=True):
        state, update = apply_tick(state, envelope.payload, config)
        assert update is not None
        got = decode(emit.value)
        expected = caused_by(envelope, update, source=SOURCE, occurred_at=update.as_of)
        expected = expected.model_copy(update={"event_id": got.event_id})
        assert emit.value == encode(expected)
        assert emit.key == expected.key.encode() and emit.headers == headers(expected)
        assert emit.topic == "market.indicators.v1" and emit.partition is None
    restored = IndicatorsProcessor(config)
    restored.restore(0, {k: v for k, v in out.state.items() if v is not None})
    assert restored.states[0]["M"] == state
    assert orjson.loads(out.state[b"M"]) == state.to_dict()
