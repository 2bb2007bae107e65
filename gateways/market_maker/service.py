"""Market-maker gateway: keeps a quote ladder in the book around the latest real price.

It follows ``market.indicators.v1`` for the reference market (default the replayed
``EPEX_AT_DAY_AHEAD_60MIN``); on every new mark price (at most every `min_interval_s`) it
cancels its open quotes and quotes the ladder of `domain.market.quoting` for the next
`periods` delivery quarter-hours on the intraday market, as the account ``market-maker`` —
through the same command topic and pre-trade risk as every other order.

The quoted periods follow the wall clock (``clock="wall"``, API users trading "now"), or the
market clock of the reference market (``clock="market"``: the `as_of` of its indicators, so a
replayed day is quoted as it replays and the EMS's auto-trading orders, made in the same event
time, find liquidity). With the market clock a new ladder is quoted once per `min_interval_s`
of market time.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer

from domain.market.quoting import QuoteConfig, ladder
from infra.kafka_io import make_producer, partitions_of, publish
from infra.logging import get_logger
from infra.settings import Settings
from schemas.catalog import INDICATORS, ORDER_COMMANDS_TOPIC
from schemas.envelope import decode, new_envelope
from schemas.market import MarketIndicatorsUpdated
from schemas.trading import CancelOrder, SubmitOrder, TimeInForce

log = get_logger("gateways.market_maker")
SOURCE = "gateway.market-maker"


@dataclass
class MarketMaker:
    settings: Settings
    reference_market: str = "EPEX_AT_DAY_AHEAD_60MIN"
    market: str = "EPEX_AT_INTRADAY_15MIN"
    account: str = "market-maker"
    site: str = "market-maker"
    periods: int = 4
    period_minutes: int = 15
    gate_closure_s: int = 300
    min_interval_s: float = 30.0  # 4 periods x 6 quotes / 30 s = 48 orders/min < the rate limit
    clock: str = "wall"
    config: QuoteConfig = field(default_factory=QuoteConfig)
    open_quotes: list[uuid.UUID] = field(default_factory=list)

    def delivery_periods(self, now: datetime) -> list[datetime]:
        """The next `periods` quarter-hours still open for trading at `now`."""
        step = timedelta(minutes=self.period_minutes)
        first = now.replace(minute=(now.minute // self.period_minutes) * self.period_minutes,
                            second=0, microsecond=0) + step
        starts = [first + k * step for k in range(self.periods + 1)]
        closure = timedelta(seconds=self.gate_closure_s)
        return [s for s in starts if s - closure > now][: self.periods]

    def commands(self, reference: float, now: datetime) -> list[SubmitOrder | CancelOrder]:
        """Cancels of the previous quotes, then the new ladder for every open period."""
        out: list[SubmitOrder | CancelOrder] = [
            CancelOrder(order_id=o, site=self.site, market=self.market, requested_at=now)
            for o in self.open_quotes]
        self.open_quotes = []
        for start in self.delivery_periods(now):
            for quote in ladder(reference, self.config):
                order_id = uuid.uuid4()
                self.open_quotes.append(order_id)
                out.append(SubmitOrder(
                    order_id=order_id, account=self.account, site=self.site, market=self.market,
                    side=quote.side, quantity_mwh=quote.quantity_mwh,
                    limit_price_eur_mwh=quote.price_eur_mwh, time_in_force=TimeInForce.GTC,
                    delivery_start=start,
                    delivery_end=start + timedelta(minutes=self.period_minutes),
                    submitted_at=now))
        return out

    async def run(self) -> None:
        producer = make_producer(self.settings.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, group_id=None,
                                    isolation_level="read_committed", enable_auto_commit=False)
        await producer.start()
        await consumer.start()
        try:
            parts = await partitions_of(consumer, [INDICATORS.name])
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            last_quote = 0.0
            latest: float | None = None
            as_of: datetime | None = None
            loop = asyncio.get_running_loop()
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for r in records:
                        try:
                            payload = decode(r.value).payload
                        except ValueError:
                            continue
                        if (isinstance(payload, MarketIndicatorsUpdated)
                                and payload.market == self.reference_market):
                            latest, as_of = payload.mark_price_eur_mwh, payload.as_of
                if latest is None or as_of is None:
                    continue
                market_clock = self.clock == "market"
                tick = as_of.timestamp() if market_clock else loop.time()
                if tick - last_quote < self.min_interval_s:
                    continue
                now = as_of if market_clock else datetime.now(UTC)
                commands = self.commands(latest, now)
                for command in commands:
                    await publish(producer, ORDER_COMMANDS_TOPIC.name,
                                  new_envelope(command, occurred_at=now, source=SOURCE))
                await producer.flush()
                last_quote = tick
                log.info("quoted", reference=latest, orders=len(commands))
        finally:
            await consumer.stop()
            await producer.stop()
