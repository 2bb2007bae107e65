"""Market-data gateway: publishes `PriceTickReceived` from a price file, ENTSO-E or aWATTar.

- ``file``: replays the shipped CSV paced by event time (``BESS_REPLAY_SPEED`` market seconds
  per wall second), after publishing ``BESS_REPLAY_BACKFILL_HOURS`` of history at once. On restart
  it resumes after the newest file tick already in the topic, so nothing is published twice.
- ``entsoe`` / ``awattar``: polls every `interval_s` (300 s, as the predecessor's market feed,
  seed 000) for yesterday..day after tomorrow and publishes the periods not yet published by
  this process.

Event ids are UUID5 of (data source, market, delivery start, price), so a consumer can
deduplicate a tick that is published again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateways.market_data.awattar import AwattarClient
from gateways.market_data.entsoe import EntsoeClient, EntsoeError
from gateways.market_data.price_file import read_price_csv, replay
from infra.kafka_io import make_producer, partitions_of, publish_batch
from infra.logging import get_logger
from infra.metrics import PUBLISHED
from infra.settings import Settings
from schemas.catalog import CLOCK, PRICE_TICKS
from schemas.clock import ClockTicked
from schemas.envelope import decode, encode, headers, new_envelope
from schemas.market import PriceTickReceived

log = get_logger("gateways.market_data")
NAMESPACE = uuid.UUID("6f1c0d1e-5d0a-4e8e-9a43-2b1f3f6c9a10")


def tick_event_id(tick: PriceTickReceived) -> uuid.UUID:
    """Deterministic id of a tick: same source, market, period and price = same id."""
    return uuid.uuid5(NAMESPACE, f"{tick.data_source}|{tick.market}|"
                                 f"{tick.delivery_start.isoformat()}|{tick.price_eur_mwh!r}")


def clock_envelopes(at: datetime, clock: str, source: str) -> list[Any]:
    """One `ClockTicked` per partition of ``system.clock.v1`` (a broadcast)."""
    tick = ClockTicked(at=at, clock=clock)  # type: ignore[arg-type]
    event_id = uuid.uuid5(NAMESPACE, f"clock|{clock}|{at.isoformat()}")
    return [new_envelope(tick, occurred_at=at, source=source, event_id=event_id)
            for _ in range(CLOCK.partitions)]


async def publish_clock(producer: AIOKafkaProducer, at: datetime, *, clock: str,
                        source: str) -> None:
    """Publish the event time `at` to every partition of the clock topic."""
    futures = [await producer.send(CLOCK.name, encode(e), key=b"clock", partition=p,
                                   headers=headers(e))
               for p, e in enumerate(clock_envelopes(at, clock, source))]
    await asyncio.gather(*futures)


async def publish_ticks(producer: AIOKafkaProducer,
                        ticks: Iterable[PriceTickReceived] | AsyncIterator[PriceTickReceived],
                        *, source: str, now: datetime | None = None,
                        clock_from: datetime | None = None) -> int:
    """Publish ticks to the price-tick topic; returns how many. `occurred_at` = delivery start
    for replayed history (event time), else `now`. With `clock_from`, every tick whose delivery
    start is at or after it and later than the clock so far also advances the replay clock
    (`ClockTicked`, after the tick), so schedules downstream follow the replay."""
    count = 0
    buffer: list[Any] = []
    in_flight: list[Any] = []  # delivery futures of the batches sent last
    clock: datetime | None = None
    published = PUBLISHED.labels(source, PRICE_TICKS.name)  # labels() costs more than inc()
    paced = hasattr(ticks, "__aiter__")  # a paced replay: publish each tick as it comes

    async def _delivered(futures: list[Any]) -> None:
        for future in futures:  # every delivery; the first failure raised
            await future
        futures.clear()

    async def _flush() -> None:
        # send the buffer as record batches; then wait for the batches before it, so one
        # batch is in flight while the next is encoded
        nonlocal in_flight
        if not buffer:
            return
        sent = await publish_batch(producer, PRICE_TICKS.name, buffer)
        published.inc(len(buffer))
        buffer.clear()
        await _delivered(in_flight)
        in_flight = sent

    async def _each() -> AsyncIterator[PriceTickReceived]:
        if paced:
            async for t in ticks:  # type: ignore[union-attr]
                yield t
        else:
            for t in ticks:  # type: ignore[union-attr]
                yield t

    async for tick in _each():
        buffer.append(new_envelope(tick, occurred_at=now or tick.delivery_start, source=source,
                                   event_id=tick_event_id(tick)))
        count += 1
        if (clock_from is not None and tick.delivery_start >= clock_from
                and (clock is None or tick.delivery_start > clock)):
            await _flush()  # the ticks so far, delivered, then the clock
            await _delivered(in_flight)
            clock = tick.delivery_start
            await publish_clock(producer, clock, clock="replay", source=source)
        elif paced or len(buffer) >= 1000:
            await _flush()
    await _flush()
    await _delivered(in_flight)
    return count


async def last_published(bootstrap: str, market: str, data_source: str) -> datetime | None:
    """Newest delivery start of `market` ticks from `data_source` in the topic (last records of
    every partition), or None."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        parts = await partitions_of(consumer, [PRICE_TICKS.name])
        if not parts:
            return None
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        newest: datetime | None = None
        for tp in parts:
            if ends[tp] == 0:
                continue
            consumer.seek(tp, max(0, ends[tp] - 50))
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    try:
                        payload = decode(msg.value).payload
                    except ValueError:
                        continue
                    if (isinstance(payload, PriceTickReceived) and payload.market == market
                            and payload.data_source == data_source
                            and (newest is None or payload.delivery_start > newest)):
                        newest = payload.delivery_start
                if not batch:
                    break
        return newest
    finally:
        await consumer.stop()


async def run_file(settings: Settings, *, stop_at: datetime | None = None) -> int:
    """Replay the price file into Kafka; returns ticks published (runs until the file ends)."""
    start = datetime.fromisoformat(settings.replay_start.replace("Z", "+00:00"))
    backfill_from = start - timedelta(hours=settings.replay_backfill_hours)
    ticks = read_price_csv(settings.replay_file, start=backfill_from, end=stop_at)
    first = next(read_price_csv(settings.replay_file, start=backfill_from, end=stop_at), None)
    if first is None:
        return 0
    resume = await last_published(settings.bootstrap, first.market, first.data_source)
    if resume is not None:
        log.info("resuming replay", after=resume.isoformat())
        ticks = (t for t in ticks if t.delivery_start > resume)
        backfill_until = max(start, resume + timedelta(hours=1))
    else:
        backfill_until = start
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:
        log.info("replaying price file", file=str(settings.replay_file),
                 speed=settings.replay_speed, live_from=backfill_until.isoformat())
        return await publish_ticks(
            producer, replay(ticks, speed=settings.replay_speed, backfill_until=backfill_until),
            source="gateway.market-data.file", clock_from=backfill_until)
    finally:
        await producer.stop()


async def run_poller(settings: Settings, source: str, zones: list[str], interval_s: float = 300.0,
                     once: bool = False) -> int:
    """Poll ENTSO-E or aWATTar for `zones`; publish new periods. Returns ticks published.
    Unless `once`, the wall clock is published every ``BESS_CLOCK_INTERVAL_S`` meanwhile."""
    seen: set[uuid.UUID] = set()
    producer = make_producer(settings.bootstrap)
    await producer.start()
    total = 0
    clock_task = None if once else asyncio.create_task(
        run_wall_clock(producer, settings.clock_interval_s, source=f"gateway.market-data.{source}"))
    try:
        while True:
            now = datetime.now(UTC)
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            start, end = day - timedelta(days=1), day + timedelta(days=2)
            for zone in zones:
                try:
                    ticks = await _fetch(settings, source, zone, start, end)
                except (EntsoeError, OSError, ValueError) as exc:
                    log.warning("price fetch failed", source=source, zone=zone, error=str(exc))
                    continue
                fresh = [t for t in ticks if tick_event_id(t) not in seen]
                seen.update(tick_event_id(t) for t in fresh)
                total += await publish_ticks(producer, fresh,
                                             source=f"gateway.market-data.{source}", now=now)
                log.info("prices published", source=source, zone=zone, fetched=len(ticks),
                         new=len(fresh))
            if once:
                return total
            await asyncio.sleep(interval_s)
    finally:
        if clock_task is not None:
            clock_task.cancel()
        await producer.stop()


async def run_wall_clock(producer: AIOKafkaProducer, interval_s: float, *, source: str) -> None:
    """Publish the wall clock (aligned to `interval_s`) until cancelled: the event time of live
    deployments, which processors use for their schedules."""
    while True:
        now = datetime.now(UTC).timestamp()
        at = datetime.fromtimestamp(now - now % interval_s, UTC)
        try:
            await publish_clock(producer, at, clock="wall", source=source)
        except KafkaError as exc:
            log.warning("clock tick not published", error=str(exc))
        await asyncio.sleep(interval_s - (datetime.now(UTC).timestamp() % interval_s))


async def _fetch(settings: Settings, source: str, zone: str, start: datetime,
                 end: datetime) -> list[PriceTickReceived]:
    if source == "entsoe":
        if settings.entsoe_token is None:
            raise ValueError("BESS_ENTSOE_TOKEN (or ENTSO_E_TOKEN) is not set")
        async with EntsoeClient(settings.entsoe_url, settings.entsoe_token) as client:
            return await client.fetch_day_ahead(zone, start, end)
    if source == "awattar":
        url = settings.awattar_url_de if zone.upper().startswith("DE") else settings.awattar_url_at
        async with AwattarClient(url, zone) as client:
            return await client.fetch(start, end)
    raise ValueError(f"unknown market-data source {source!r}")
