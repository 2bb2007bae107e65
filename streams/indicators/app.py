"""Wiring of the indicators processor.

Consumes `market.price-ticks.v1`, folds each tick with `domain.market.indicators.apply_tick`
keyed by market, keeps the per-market state in its changelog and produces
`MarketIndicatorsUpdated` to `market.indicators.v1`, exactly-once (`streams.runtime`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from domain.market.indicators import IndicatorConfig, IndicatorState, apply_tick
from infra.metrics import EMA, MARK, PRICE_EVENTS, VWAP
from infra.settings import Settings
from schemas.catalog import INDICATORS, PRICE_TICKS
from schemas.market import PriceTickReceived
from streams.codec import Parent, follow_up
from streams.runtime import Emit, Output, Processor, Runtime

NAME = "indicators"
SOURCE = "streams.indicators"


class IndicatorsProcessor(Processor):
    name = NAME
    inputs = (PRICE_TICKS.name,)
    partitions = PRICE_TICKS.partitions

    def __init__(self, config: IndicatorConfig) -> None:
        self.config = config
        self.states: dict[int, dict[str, IndicatorState]] = {}

    def restore(self, partition: int, state: dict[bytes, bytes]) -> None:
        self.states[partition] = {k.decode(): IndicatorState.from_dict(orjson.loads(v))
                                  for k, v in state.items()}

    def revoke(self, partition: int) -> None:
        self.states.pop(partition, None)

    def handle(self, partition: int, records: Sequence[Any], out: Output) -> None:
        states = self.states.setdefault(partition, {})
        changed: dict[str, IndicatorState] = {}
        latest: dict[str, Any] = {}
        ticks: Counter[str] = Counter()
        emits = out.emits
        for record in records:
            envelope = self.decode(record, out, (PriceTickReceived,))
            if envelope is None:
                continue
            tick: PriceTickReceived = envelope.payload
            state = states.get(tick.market) or IndicatorState(market=tick.market)
            state, update = apply_tick(state, tick, self.config)
            ticks[tick.market] += 1
            if update is None:
                continue
            states[tick.market] = changed[tick.market] = state
            latest[tick.market] = update
            # the bytes of encode(caused_by(envelope, update, ...)), without building the model
            key, value, headers = follow_up(Parent(envelope), update, SOURCE,
                                            occurred_at=update.as_of)
            emits.append(Emit(INDICATORS.name, key, value, headers))
        for market, state in changed.items():
            out.state[market.encode()] = orjson.dumps(state.to_dict())
        # metrics once per market and batch (a labelled child costs more than the increment)
        for market, n in ticks.items():
            PRICE_EVENTS.labels(market).inc(n)
        for market, update in latest.items():
            MARK.labels(market).set(update.mark_price_eur_mwh)
            EMA.labels(market).set(update.ema_eur_mwh)
            VWAP.labels(market).set(update.vwap_eur_mwh)


def create_runtime(settings: Settings) -> Runtime:
    config = IndicatorConfig(ema_span=settings.ema_span, vwap_window_s=settings.vwap_window_s)
    # a transaction costs a handful of broker round trips whatever its size: when behind
    # (a backfill), take up to ~6 000 ticks per partition into one (1 MiB ~ 2 300 ticks)
    return Runtime(IndicatorsProcessor(config), settings.bootstrap, max_records=20_000,
                   max_partition_fetch_bytes=4 * 1024 * 1024)
