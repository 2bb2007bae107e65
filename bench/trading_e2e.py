"""Trading end to end on the real broker: SubmitOrder in -> risk -> matching -> TradeExecuted out,
beside a bare consume->produce loop on the same broker.

``.venv/bin/python -m bench.trading_e2e [--orders N] [--rate R] [--seconds S] [--quick]``

Set-up: an embedded single-node Kafka on free ports in a temp dir removed afterwards (or
BESS_KAFKA_BOOTSTRAP; then do not point it at a deployment whose risk or matching workers run:
the bench uses the catalog topics and the processors' consumer groups). The real processors run
as subprocesses, ``python -m infra.cli worker risk`` and ``... worker matching`` (exactly-once,
`streams.runtime`), with a bench policy (`policy`: battery sites with ample limits, no rate
limit that a run could reach, telemetry valid for an hour). Every site gets a fresh SoC and
temperature reading first, so every risk rule runs for every order.

Orders: pairs of GTC orders at the same price and quantity (0.1 MWh @ 100.00 EUR/MWh) on the two
EPEX intraday markets, one delivery period ~1 h ahead. A pair is one SELL and one BUY from two
different sites (`--sites`, an odd number, so every site alternates sides and its position stays
within +-0.2 MWh); accounts are per site and side, so self-trade prevention never fires. Each
stage (warm-up, throughput, latency) has its own sites: the risk state of a site grows with its
open orders and filled-but-undelivered energy, and no stage should inherit another's. The
risk processor is keyed by site, so the two orders of a pair may reach the matching engine in
either order; whichever comes second trades against the first (or against another pair's order
at the same price: every BUY meets a SELL), so N orders give exactly N/2 trades.

1. Throughput: after a warm-up, N orders are published with the system's producer settings
   (`infra.kafka_io.make_producer`, key = site, like the API); the clock runs from the first
   send until a read_committed consumer of ``trading.trades.v1`` has seen all N/2 trades of the
   run. Reported as orders/s (and trades/s = half). *Reference* (workers stopped): a bare
   aiokafka loop in a fresh consumer group reads the same N records of
   ``trading.order-commands.v1`` from the run's start offsets, decodes nothing and sends each
   value and key to a scratch topic (idempotent, acks=all); from its first record to the last
   ack. Target: >= 40 % of the reference.
2. Latency: orders at a steady rate (R/s, pairs sent at their scheduled times) for S seconds;
   the latency of a trade is the time its TradeExecuted reaches the consumer minus the send time
   of the later of its two orders (the one that can trade). p50 / p99 / max. Target: p99 <= 25
   ms. The rate should stay well below the throughput of row 1, or this measures a queue.

3. Floor (a reference for row 2): the same rate through two bare exactly-once hops
   (`eos_hop`: read_committed consumer, one transactional producer per input partition, one
   transaction per fetched batch and partition that copies the records and commits the
   offsets, as `streams.runtime` does) with no decoding and no processing. Order-to-trade
   crosses two such hops (risk, matching), so this is what Kafka transactions alone cost on
   this broker and machine; row 2 cannot be lower.

Output: a markdown table on stdout and everything in ``bench/out/trading_e2e.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.market_pipeline import Ctx, cpu_s, send_all
from infra.kafka_io import ensure_topics, make_producer, partitions_of
from infra.local.kafka import KafkaServer
from infra.local.process import ManagedProcess, free_port
from infra.settings import PROJECT_ROOT
from schemas.catalog import (
    MATCHING_INBOX,
    ORDER_COMMANDS_TOPIC,
    ORDER_EVENTS_TOPIC,
    TELEMETRY_READINGS,
    TRADES,
    Topic,
    all_topics,
)
from schemas.envelope import encode, headers, new_envelope
from schemas.telemetry import TelemetryReceived
from schemas.trading import Side, SubmitOrder
from streams.runtime import FETCH_MAX_WAIT_MS, transactional_producer

OUT = Path(__file__).resolve().parent / "out" / "trading_e2e.json"
SOURCE = "bench.trading-e2e"
MARKETS = ("EPEX_AT_INTRADAY_15MIN", "EPEX_DE_INTRADAY_15MIN")
SITES = 101  # per stage, by default; odd (see the module doc)
QTY, PRICE = Decimal("0.1"), Decimal("100.00")
Value = tuple[bytes, bytes, list[tuple[str, bytes]]]



GROUPS = ("warm", "tput", "lat")
"""One set of sites per stage, so that no stage inherits the risk state another left behind."""


def site_name(group: str, i: int) -> str:
    return f"bench-{group}-{i}"


def policy(sites: int) -> dict[str, Any]:
    """Battery sites with limits no run reaches (the rules still run for every order)."""
    return {
        "version": 1,
        "per_market_rps": {m: 100_000_000 for m in MARKETS},
        "limits": {"capacity_mwh": 10_000, "max_power_mw": 100_000, "max_telemetry_age_s": 3600,
                   "market_position_limit_mwh": 1000, "site_position_limit_mwh": 2000},
        "sites": {site_name(g, i): {} for g in GROUPS for i in range(sites)},
    }


class Orders:
    """The bench's SubmitOrders, encoded like the API's, with the send time of each."""

    def __init__(self, sites: int) -> None:
        self.sites = sites
        self.pairs = 0
        now = datetime.now(UTC)
        self.start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
        self.sent: dict[str, float] = {}  # order id -> perf_counter at send

    def make(self, pairs: int, group: str) -> list[tuple[str, Value]]:
        """`pairs` pairs of `group`'s sites as (order id, (key, value, headers)), maker first."""
        out = []
        for _ in range(pairs):
            i = self.pairs
            self.pairs += 1
            maker_side = Side.SELL if i % 2 == 0 else Side.BUY
            sites = self.sites
            for site, side in ((i % sites, maker_side), ((i + 1) % sites, _other(maker_side))):
                name = site_name(group, site)
                now = datetime.now(UTC)
                order = SubmitOrder(
                    order_id=uuid.uuid4(), account=f"{name}-{side.value.lower()}", site=name,
                    market=MARKETS[i % len(MARKETS)], side=side, quantity_mwh=QTY,
                    limit_price_eur_mwh=PRICE, delivery_start=self.start,
                    delivery_end=self.start + timedelta(minutes=15), submitted_at=now)
                env = new_envelope(order, occurred_at=now, source=SOURCE)
                out.append((str(order.order_id), (env.key.encode(), encode(env), headers(env))))
        return out


def _other(side: Side) -> Side:
    return Side.BUY if side is Side.SELL else Side.SELL


def telemetry(sites: int) -> list[Value]:
    now = datetime.now(UTC)
    readings = [TelemetryReceived(site=site_name(g, i), device_id="bms", source="manual",
                                  device_time=now, received_at=now, soc_pct=50.0,
                                  temperature_c=25.0) for g in GROUPS for i in range(sites)]
    envs = [new_envelope(r, occurred_at=now, source=SOURCE) for r in readings]
    return [(e.key.encode(), encode(e), headers(e)) for e in envs]


class TradeReader:
    """read_committed consumer of trades (and rejections) of the bench's orders."""

    def __init__(self, bootstrap: str, orders: Orders) -> None:
        self.orders = orders
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False,
                                         isolation_level="read_committed", fetch_max_wait_ms=20)
        self.seen: list[tuple[float, str, str]] = []  # (received, buy id, sell id)
        self.rejected: list[str] = []
        self.task: asyncio.Task[None]

    async def start(self) -> None:
        await self.consumer.start()
        parts = await partitions_of(self.consumer, [TRADES.name, ORDER_EVENTS_TOPIC.name])
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)  # resolve the seek before anything is produced
        self.task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()

    async def until(self, trades: int, timeout_s: float, workers: list[ManagedProcess]) -> float:
        """Wait until `trades` trades in total were seen; returns the perf_counter of the
        batch that completed them."""
        deadline = time.perf_counter() + timeout_s
        while len(self.seen) < trades:
            if self.rejected:
                raise RuntimeError(f"{len(self.rejected)} orders rejected, first: "
                                   f"{self.rejected[0][:500]}")
            if self.task.done():
                self.task.result()  # raises what stopped it
            if time.perf_counter() > deadline or not all(w.running for w in workers):
                logs = "\n".join(f"--- {w.name}\n{w.tail()}" for w in workers)
                raise RuntimeError(f"saw {len(self.seen)}/{trades} trades\n{logs}")
            await asyncio.sleep(0.005)
        return self.seen[trades - 1][0]

    async def _follow(self) -> None:
        sent = self.orders.sent
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            now = time.perf_counter()  # getmany returns as soon as records are there
            for tp, msgs in batch.items():
                if tp.topic == TRADES.name:
                    for m in msgs:
                        payload = orjson.loads(m.value)["payload"]
                        if payload["buy_order_id"] in sent:
                            self.seen.append((now, payload["buy_order_id"],
                                              payload["sell_order_id"]))
                else:
                    for m in msgs:
                        if dict(m.headers).get("event_type") == b"OrderRejected":
                            payload = orjson.loads(m.value)["payload"]
                            if payload["order_id"] in sent:
                                self.rejected.append(f"{payload['reason']}: {payload['detail']}")

    def latencies_ms(self, since: int = 0) -> list[float]:
        sent = self.orders.sent
        return sorted((t - max(sent[b], sent[s])) * 1000 for t, b, s in self.seen[since:])


async def publish(producer: Any, orders: Orders, batch: list[tuple[str, Value]]) -> list[Any]:
    """Send every order (recording its send time); returns the delivery futures."""
    futs = []
    for oid, (k, v, h) in batch:
        orders.sent[oid] = time.perf_counter()
        futs.append(await producer.send(ORDER_COMMANDS_TOPIC.name, v, key=k, headers=h))
    return futs


async def consumed(bootstrap: str, group: str, topics: list[str], timeout_s: float,
                   workers: list[ManagedProcess] | None = None) -> None:
    """Wait until consumer group `group` has committed past every record of `topics` that was
    written so far and is visible to a read_committed consumer.

    A bare ``committed >= end offset - 1`` is wrong for topics written in transactions: every
    transaction leaves a marker (one offset per transaction, not per record), and a transaction
    that was *aborted* (a batch of the upstream worker failed and was redone, or a producer was
    fenced in a rebalance) leaves records no read_committed consumer ever sees, so its group
    never commits past them. That is why a run under load once failed with "bess-matching did
    not consume [...]" although every trade had been seen. So: for each partition, a probe
    consumer (read_committed, no group) reads from the group's committed offset up to the end
    offset taken at the start; the partition is drained when nothing visible is left there.
    """
    group_consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                      enable_auto_commit=False)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, isolation_level="read_committed")
    await group_consumer.start()
    await probe.start()
    try:
        parts = await partitions_of(group_consumer, topics)
        ends = await group_consumer.end_offsets(parts)  # high watermarks (read_uncommitted)
        probe.assign(parts)
        pending = [tp for tp in parts if ends[tp] > 0]
        deadline = time.perf_counter() + timeout_s
        while pending:
            left = []
            for tp in pending:
                committed = await group_consumer.committed(tp) or 0
                if committed < ends[tp] and await _visible(probe, tp, committed, ends[tp]):
                    left.append(tp)
            pending = left
            if not pending:
                break
            dead = [w.name for w in workers or [] if not w.running]
            if dead or time.perf_counter() > deadline:
                state = ", ".join([f"{tp.topic}:{tp.partition} committed "
                                   f"{await group_consumer.committed(tp)} end {ends[tp]}"
                                   for tp in pending])
                logs = "\n".join(f"--- {w.name}\n{w.tail(40)}" for w in workers or [])
                why = f"worker(s) {dead} exited" if dead else f"not in {timeout_s} s"
                raise RuntimeError(f"{group} did not consume {topics}: {why} ({state})\n{logs}")
            await asyncio.sleep(0.2)
    finally:
        await probe.stop()
        await group_consumer.stop()


async def _visible(probe: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int) -> bool:
    """Whether a read_committed consumer sees a record in [start, end) of `tp` (it blocks while
    a transaction there is still open, until the broker's transaction timeout at worst)."""
    probe.seek(tp, start)
    while await probe.position(tp) < end:
        records = (await probe.getmany(tp, timeout_ms=200)).get(tp, [])
        if any(r.offset < end for r in records):
            return True
    return False


async def drained(bootstrap: str, timeout_s: float, workers: list[ManagedProcess]) -> None:
    """Wait until both workers have consumed everything produced so far (the risk worker
    still processes the order events of the last trades when those trades are visible)."""
    await consumed(bootstrap, "bess-matching", [MATCHING_INBOX.name], timeout_s, workers)
    await consumed(bootstrap, "bess-risk", [ORDER_COMMANDS_TOPIC.name, ORDER_EVENTS_TOPIC.name],
                   timeout_s, workers)


def pct(values: list[float], q: float) -> float:
    return values[max(0, math.ceil(q * len(values)) - 1)]


async def bench(ctx: Ctx, n: int, rate: int, seconds: float, sites: int) -> dict[str, Any]:
    orders = Orders(sites)
    risk = ctx.child("risk", "infra.cli", "worker", "risk")
    matching = ctx.child("matching", "infra.cli", "worker", "matching")
    workers = [risk, matching]
    reader = TradeReader(ctx.bootstrap, orders)
    producer = make_producer(ctx.bootstrap)
    await reader.start()
    await producer.start()
    result: dict[str, Any] = {}
    try:
        await send_all(producer, TELEMETRY_READINGS.name, telemetry(sites))
        for w in workers:
            w.start()
        t_boot = time.perf_counter()
        # every site's SoC must be in the risk state before its first order (another topic)
        await consumed(ctx.bootstrap, "bess-risk", [TELEMETRY_READINGS.name], 180, workers)
        warm = 2 * sites * len(MARKETS)
        await asyncio.gather(*await publish(producer, orders, orders.make(warm, "warm")))
        await reader.until(warm, 180, workers)
        result["warmup_s"] = time.perf_counter() - t_boot

        # 1. throughput
        batch = orders.make(n // 2, "tput")
        consumer = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, [ORDER_COMMANDS_TOPIC.name])
            starts = await consumer.end_offsets(parts)
        finally:
            await consumer.stop()
        base = len(reader.seen)
        cpu0 = {w.name: cpu_s(w) for w in workers}
        t0 = time.perf_counter()
        pub = asyncio.ensure_future(publish(producer, orders, batch))
        t_end = await reader.until(base + n // 2, 120 + n / 50, workers)
        await asyncio.gather(*await pub)
        elapsed = t_end - t0
        cpu = {w.name: cpu_s(w) - cpu0[w.name] for w in workers}
        lat = reader.latencies_ms(base)
        result["throughput"] = {
            "orders": n, "trades": n // 2, "orders_per_s": n / elapsed,
            "trades_per_s": n / 2 / elapsed, "seconds": elapsed,
            "publish_orders_per_s": n / (max(orders.sent[o] for o, _ in batch) - t0),
            "backlog_latency_p50_ms": pct(lat, 0.5), "backlog_latency_p99_ms": pct(lat, 0.99),
            "cpu_ms_per_order": {k: v * 1000 / n for k, v in cpu.items()},
            "cpu_share": {k: v / elapsed for k, v in cpu.items()},
            "start_offsets": {f"{tp.topic}:{tp.partition}": o for tp, o in starts.items()},
        }

        # 2. latency at a steady rate: one pair every 2/rate s (several per 10 ms slot when
        # faster), each slot at its scheduled time; after the throughput run's backlog is gone
        await drained(ctx.bootstrap, 300, workers)
        base = len(reader.seen)
        per_slot = max(1, round(rate / 200))  # pairs per slot
        interval = 2 * per_slot / rate
        slots = max(1, int(seconds / interval))
        live = orders.make(per_slot * slots, "lat")
        t0 = time.perf_counter()
        futs: list[Any] = []
        for slot in range(slots):
            await asyncio.sleep(max(0.0, t0 + slot * interval - time.perf_counter()))
            futs += await publish(producer, orders,
                                  live[slot * 2 * per_slot:(slot + 1) * 2 * per_slot])
        achieved = len(live) / (time.perf_counter() - t0)
        await asyncio.gather(*futs)
        await reader.until(base + len(live) // 2, 60, workers)
        lat = reader.latencies_ms(base)
        result["latency"] = {"target_rate": rate, "achieved_rate": achieved,
                             "trades": len(lat), "p50_ms": pct(lat, 0.5),
                             "p99_ms": pct(lat, 0.99), "max_ms": lat[-1]}
    finally:
        await reader.stop()
        await producer.stop()
        for w in workers:
            await asyncio.to_thread(w.stop)

    # reference: bare consume -> produce of the throughput run's N commands
    ref_consumer = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap,
                                    group_id=f"bench-ref-{ctx.run}", enable_auto_commit=False)
    producer = make_producer(ctx.bootstrap)
    await ref_consumer.start()
    await producer.start()
    futs = []
    t_ref = 0.0
    try:
        tps = [TopicPartition(ORDER_COMMANDS_TOPIC.name, int(k.rsplit(":", 1)[1]))
               for k in result["throughput"]["start_offsets"]]
        ref_consumer.assign(tps)
        for tp in tps:
            ref_consumer.seek(tp, result["throughput"]["start_offsets"][f"{tp.topic}:"
                                                                         f"{tp.partition}"])
        while len(futs) < n:
            for msgs in (await ref_consumer.getmany(timeout_ms=100, max_records=10_000)).values():
                t_ref = t_ref or time.perf_counter()
                futs += [await producer.send(f"bench.{ctx.run}.scratch", m.value, key=m.key)
                         for m in msgs[:n - len(futs)]]
        await asyncio.gather(*futs)
        ref = n / (time.perf_counter() - t_ref)
    finally:
        await ref_consumer.stop()
        await producer.stop()
    result["throughput"]["reference_records_per_s"] = ref
    result["throughput"]["ratio"] = result["throughput"]["orders_per_s"] / ref
    return result


async def eos_hop(bootstrap: str, src: str, dst: str, group: str) -> None:
    """A bare exactly-once hop (``--eos-hop``), the transaction protocol of `streams.runtime`
    with no decoding and no processing: a read_committed consumer in `group` with the
    runtime's fetch wait; per input partition a transactional producer (the runtime's
    settings); per fetched batch and partition one transaction that copies each record's key
    and value to `dst` and commits the consumed offsets. Runs until killed."""
    consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, isolation_level="read_committed",
                                auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    producers: dict[int, AIOKafkaProducer] = {}

    async def copy(tp: TopicPartition, msgs: list[Any]) -> None:
        producer = producers.get(tp.partition)
        if producer is None:
            producer = transactional_producer(bootstrap, f"{group}-{tp.partition}")
            await producer.start()
            producers[tp.partition] = producer
        async with producer.transaction():
            for m in msgs:
                await producer.send(dst, m.value, key=m.key)
            await producer.send_offsets_to_transaction({tp: msgs[-1].offset + 1}, group)

    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            await asyncio.gather(*(copy(tp, msgs) for tp, msgs in batch.items()))
    finally:
        await consumer.stop()
        for producer in producers.values():
            await producer.stop()


async def eos_floor(ctx: Ctx, rate: int, seconds: float) -> dict[str, Any]:
    """Latency through two bare exactly-once hops (`eos_hop` subprocesses: eos0 -> eos1 ->
    eos2), records sent at `rate`/s in 10 ms slots as in the latency run; the latency of a
    record is the time a read_committed consumer of eos2 sees it minus its send time. What
    SubmitOrder -> risk -> matching -> TradeExecuted costs in Kafka transactions alone."""
    topics = [f"bench.{ctx.run}.eos{i}" for i in range(3)]
    hops = [ctx.child(f"eos-hop-{i}", "bench.trading_e2e", "--eos-hop", topics[i],
                      topics[i + 1], f"bench-{ctx.run}-eos{i}") for i in range(2)]
    reader = AIOKafkaConsumer(topics[2], bootstrap_servers=ctx.bootstrap, group_id=None,
                              isolation_level="read_committed", auto_offset_reset="earliest",
                              fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    producer = make_producer(ctx.bootstrap)
    sent: dict[bytes, float] = {}
    seen: list[float] = []

    async def read(total: int) -> None:
        while len(seen) < total:
            for msgs in (await reader.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                seen.extend(now - sent[m.value] for m in msgs)

    async def send(count: int, slot_s: float = 0.01) -> float:
        per_slot = max(1, round(rate * slot_s))
        t0 = time.perf_counter()
        futs = []
        for i in range(count):
            if i % per_slot == 0:
                await asyncio.sleep(max(0.0, t0 + i // per_slot * slot_s - time.perf_counter()))
            value = str(i).encode() + b"-" + ctx.run.encode()
            sent[value] = time.perf_counter()
            futs.append(await producer.send(topics[0], value, key=str(i % 101).encode()))
        await asyncio.gather(*futs)
        return count / (time.perf_counter() - t0)

    await reader.start()
    await producer.start()
    try:
        for hop in hops:
            hop.start()
        warm = 300  # group joins, producer ids, first transactions
        reading = asyncio.ensure_future(read(warm))
        await send(warm)
        await asyncio.wait_for(reading, 180)
        seen.clear()
        count = max(1, int(rate * seconds))
        reading = asyncio.ensure_future(read(count))
        achieved = await send(count)
        await asyncio.wait_for(reading, 60)
    finally:
        await reader.stop()
        await producer.stop()
        for hop in hops:
            await asyncio.to_thread(hop.stop)
    lat = sorted(x * 1000 for x in seen)
    return {"records": len(lat), "target_rate": rate, "achieved_rate": achieved,
            "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": lat[-1]}


async def run_all(ctx: Ctx, n: int, rate: int, seconds: float, sites: int) -> dict[str, Any]:
    extra = (Topic(f"bench.{ctx.run}.scratch", "site", 3, (SubmitOrder,), "bench"),
             *(Topic(f"bench.{ctx.run}.eos{i}", "site", 3, (SubmitOrder,), "bench")
               for i in range(3)))
    await ensure_topics(ctx.bootstrap, all_topics() + extra, attempts=60)
    try:
        result = await asyncio.wait_for(bench(ctx, n, rate, seconds, sites),
                                        600 + n / 20 + seconds)
    except Exception as exc:  # report the failure in the table
        return {"error": f"{type(exc).__name__}: {exc}"[:3000]}
    try:
        result["eos_floor"] = await asyncio.wait_for(eos_floor(ctx, rate, seconds), 300 + seconds)
    except Exception as exc:
        result["eos_floor"] = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
    return result


def table(res: dict[str, Any]) -> str:
    c = res["config"]
    lines = [f"N={c['orders']:,} orders ({c['orders'] // 2:,} trades), {c['sites']} sites, "
             f"{len(MARKETS)} markets, {c['cpus']} CPUs; kafka {c['kafka']}; load average "
             f"{c['loadavg_before'][0]:.1f} -> {c['loadavg_after'][0]:.1f}\n",
             "| Measurement | System | Reference | Ratio / latency | Target | Met |",
             "|---|---|---|---|---|---|"]
    if "error" in res:
        first = res["error"].splitlines()[0]
        lines.append(f"| SubmitOrder -> TradeExecuted | error: {first} | | | | no |")
        return "\n".join(lines)
    t, lat = res["throughput"], res["latency"]
    ok = t["ratio"] >= 0.40
    lines.append(f"| SubmitOrder -> risk -> matching -> TradeExecuted (exactly-once workers) | "
                 f"{t['orders_per_s']:,.0f} orders/s ({t['trades_per_s']:,.0f} trades/s) | "
                 f"{t['reference_records_per_s']:,.0f} rec/s (bare aiokafka consume->produce) | "
                 f"{t['ratio']:.0%} | >= 40 % | {'yes' if ok else '**no**'} |")
    ok = lat["p99_ms"] <= 25
    lines.append(f"| Order-to-trade latency at {lat['target_rate']:,} orders/s | "
                 f"p50 {lat['p50_ms']:.1f} / p99 {lat['p99_ms']:.1f} / max {lat['max_ms']:.1f} ms"
                 f" ({lat['achieved_rate']:,.0f} orders/s sent) | | | p99 <= 25 ms | "
                 f"{'yes' if ok else '**no**'} |")
    floor = res.get("eos_floor", {"error": "not run"})
    lines.append(f"| Floor: two bare exactly-once hops (no decoding, no processing) at "
                 f"{lat['target_rate']:,} rec/s | " + (
                     f"error: {floor['error'].splitlines()[0]}" if "error" in floor else
                     f"p50 {floor['p50_ms']:.1f} / p99 {floor['p99_ms']:.1f} / max "
                     f"{floor['max_ms']:.1f} ms") + " | | | (reference) | |")
    cpu = ", ".join(f"{k} {v:.2f} ms CPU/order (busy {t['cpu_share'][k]:.0%})"
                    for k, v in t["cpu_ms_per_order"].items())
    lines.append(f"\nthroughput run: {cpu}; publish {t['publish_orders_per_s']:,.0f} orders/s; "
                 f"backlog latency p50 {t['backlog_latency_p50_ms']:.0f} / p99 "
                 f"{t['backlog_latency_p99_ms']:.0f} ms; warm-up {res['warmup_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.trading_e2e", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, help="N of the throughput run (default 20000; "
                    "quick 4000)")
    ap.add_argument("--rate", type=int, default=200, help="orders/s of the latency run")
    ap.add_argument("--seconds", type=float, help="length of the latency run (default 10; "
                    "quick 3)")
    ap.add_argument("--sites", type=int, default=SITES, help="battery sites (made odd)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--eos-hop", nargs=3, metavar=("SRC", "DST", "GROUP"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.eos_hop:
        bootstrap = os.environ["BESS_KAFKA_BOOTSTRAP"]
        asyncio.run(eos_hop(bootstrap, *args.eos_hop))
        return 0
    n = (args.orders or (4000 if args.quick else 20_000)) // 2 * 2
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    sites = args.sites | 1
    bootstrap = os.environ.get("BESS_KAFKA_BOOTSTRAP")
    config = {"orders": n, "sites": sites, "markets": list(MARKETS), "rate": args.rate,
              "seconds": seconds, "kafka": "external" if bootstrap else "embedded single node",
              "cpus": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="bess-bench-trading-"))
    kafka: KafkaServer | None = None
    ctx: Ctx | None = None
    try:
        if not bootstrap:
            kafka = KafkaServer(tmp / "kafka", port=free_port(), controller_port=free_port())
            kafka.start()
            bootstrap = kafka.bootstrap
        policy_file = tmp / "policy.yaml"
        policy_file.write_text(yaml.safe_dump(policy(sites)))
        env = {"BESS_KAFKA_BOOTSTRAP": bootstrap, "BESS_HOME": str(tmp / "home"),
               "BESS_LOG_LEVEL": "WARNING", "BESS_POLICY_FILE": str(policy_file)}
        ctx = Ctx(bootstrap, "", tmp, uuid.uuid4().hex[:8], env)
        config["loadavg_before"] = os.getloadavg()
        results = {"config": config,
                   **asyncio.run(run_all(ctx, n, args.rate, seconds, sites))}
        config["loadavg_after"] = os.getloadavg()
    finally:
        for proc in ctx.children if ctx else []:
            proc.stop()
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results) + f"\n\n(also in {OUT.relative_to(PROJECT_ROOT)})")
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main())
