"""Wiring of the indicators processor.

Consumes `market.price-ticks.v1`, folds each tick with `domain.market.indicators.apply_tick`
keyed by market, keeps the per-market state in a faust table (changelog topic, so a restart
resumes exactly where it stopped) and produces `MarketIndicatorsUpdated` to
`market.indicators.v1`, all in one Kafka transaction per commit (exactly-once).
"""

from __future__ import annotations

from typing import Any

import faust
import orjson

from domain.market.indicators import IndicatorConfig, IndicatorState, apply_tick
from infra.metrics import EMA, EVENTS, MARK, PRICE_EVENTS, VWAP
from infra.settings import Settings
from schemas.catalog import INDICATORS, PRICE_TICKS
from schemas.envelope import caused_by, encode, headers
from schemas.market import PriceTickReceived
from streams.common import create_faust_app, decode_or_dead_letter, faust_topic

NAME = "indicators"
SOURCE = "streams.indicators"


def create_app(settings: Settings, web_port: int | None = None) -> faust.App:
    """Build the faust app; nothing connects until the worker starts."""
    app = create_faust_app(NAME, settings, web_port=web_port)
    config = IndicatorConfig(ema_span=settings.ema_span, vwap_window_s=settings.vwap_window_s)
    ticks = faust_topic(app, PRICE_TICKS)
    out = faust_topic(app, INDICATORS)
    dlq = app.topic(PRICE_TICKS.dlq, key_serializer="raw", value_serializer="raw", internal=False)
    state_table = app.Table("indicator-state", default=None, partitions=PRICE_TICKS.partitions)

    @app.agent(ticks, name="indicators")
    async def process(stream: Any) -> None:
        async for event in stream.events():
            EVENTS.labels(NAME, PRICE_TICKS.name).inc()
            envelope = await decode_or_dead_letter(event, NAME, dlq, (PriceTickReceived,))
            if envelope is None:
                continue
            tick: PriceTickReceived = envelope.payload
            key = tick.market.encode()
            raw = state_table.get(key)
            state = (IndicatorState.from_dict(orjson.loads(raw)) if raw
                     else IndicatorState(market=tick.market))
            state, update = apply_tick(state, tick, config)
            PRICE_EVENTS.labels(tick.market).inc()
            if update is None:
                continue
            state_table[key] = orjson.dumps(state.to_dict())
            result = caused_by(envelope, update, source=SOURCE, occurred_at=update.as_of)
            await out.send(key=key, value=encode(result), headers=headers(result))
            MARK.labels(tick.market).set(update.mark_price_eur_mwh)
            EMA.labels(tick.market).set(update.ema_eur_mwh)
            VWAP.labels(tick.market).set(update.vwap_eur_mwh)

    return app
