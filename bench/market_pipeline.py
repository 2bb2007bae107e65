"""Market pipeline benchmark: ticks -> indicators -> Postgres, each row against a bare reference.

``.venv/bin/python -m bench.market_pipeline [--events N] [--quick]`` (what ``make bench`` runs).

Set-up: an embedded single-node Kafka and a PostgreSQL with ``fsync=off, synchronous_commit=off,
full_page_writes=off`` (durability is not measured: database numbers are upper bounds) on free
ports in a temp dir removed afterwards; or BESS_KAFKA_BOOTSTRAP / BESS_POSTGRES_DSN when set (then
run-unique markets, topics and schemas are used; the schemas are dropped). Input: real ticks of
data/at_hourly_2015_2023.csv copied onto 30 markets (``model_copy`` of ``market``), interleaved by
delivery hour, so each market gets its ticks in order and every tick yields one indicator update.

1. Pipeline: the indicators worker (``python -m infra.cli worker indicators``, exactly-once) runs
   as a subprocess, warmed up with one tick per market; timed from the first ``publish_ticks`` call
   to the moment a read_committed consumer has seen all N ``MarketIndicatorsUpdated`` of the run.
   Reference (worker stopped): a bare aiokafka loop in a fresh consumer group reads N records of
   the same tick topic from the start, decodes nothing, sends each value and key to a scratch
   topic with the system's producer settings (idempotent, acks=all, the worker's batch size);
   timed from its first record to the last ack. Printed below the table: the same loop with
   aiokafka's default 16 KiB batches.
2. Projection writes: N ticks in a fresh topic; ``ProjectionRunner(MarketProjection)`` (topics
   overridden, own schema, max_batch 10 000) ``open()`` then timed ``catch_up()``. Reference: the
   same rows (decoded from the same bytes, untimed) ``copy_records_to_table`` into ``LIKE
   <schema>.prices INCLUDING ALL`` (same columns, key and index) in 10k-row batches.
3. Projection lag: a ProjectionRunner subprocess (``--projector``: ``run()`` as in ``bess
   projector``) follows a fresh topic while ticks are produced at a steady rate in 10 ms slots and
   ``bess_meta.projection_offsets`` is polled every 5 ms. Lag of an event = first poll showing its
   partition's offset >= its offset minus the time its ``send()`` was called (resolution ~5 ms).

Before each timed section (system and reference alike) the bench process collects and freezes its
own heap out of the cyclic GC (`settle`): the N ticks or encoded values it holds would otherwise be
walked by every full collection while `publish_ticks` or `catch_up` is timed in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import itertools
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from gateways.market_data.price_file import read_price_csv
from gateways.market_data.service import publish_ticks, tick_event_id
from infra.kafka_io import ensure_topics, make_producer, partitions_of
from infra.local.kafka import KafkaServer
from infra.local.postgres import PostgresServer
from infra.local.process import ManagedProcess, free_port
from infra.settings import PROJECT_ROOT
from projections.framework import (
    META_SQL,
    ProjectionRunner,
    no_cyclic_gc,
    projection_consumer,
)
from projections.market import MarketProjection
from schemas.catalog import INDICATORS, PRICE_TICKS, Topic, all_topics
from schemas.envelope import decode, encode, headers, new_envelope
from schemas.market import PriceTickReceived
from streams.runtime import MAX_BATCH_BYTES

MARKETS, SOURCE = 30, "bench.market-pipeline"
STAGES = ("pipeline", "projection", "lag")
CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"
OUT = Path(__file__).resolve().parent / "out" / "market_pipeline.json"
PRICE_COLS = ("market", "delivery_start", "delivery_end", "resolution", "bidding_zone",
              "price_eur_mwh", "volume_mwh", "data_source", "event_id")
Value = tuple[bytes, bytes, list[tuple[str, bytes]]]


@dataclass
class Ctx:
    bootstrap: str
    dsn: str
    tmp: Path
    run: str  # run id: makes markets, topics, schemas and groups unique
    env: dict[str, str]
    children: list[ManagedProcess] = field(default_factory=list)

    def child(self, name: str, *argv: str) -> ManagedProcess:
        self.children.append(ManagedProcess(name, [sys.executable, "-m", *argv],
                                            self.tmp / f"{name}.log", self.env))
        return self.children[-1]


def make_ticks(n: int, prefix: str) -> list[PriceTickReceived]:
    """n real ticks over MARKETS markets ``<prefix>_NN``, interleaved by delivery hour."""
    base = list(itertools.islice(read_price_csv(CSV), math.ceil(n / MARKETS)))
    ticks = [t.model_copy(update={"market": f"{prefix}_{i:02d}"}) for t in base
             for i in range(MARKETS)][:n]
    if len(ticks) < n:
        raise SystemExit(f"{CSV} has too few ticks for {n} events over {MARKETS} markets")
    return ticks


def encoded(ticks: list[PriceTickReceived]) -> list[Value]:
    """(key, value, headers) exactly as `publish_ticks` builds them."""
    envs = (new_envelope(t, occurred_at=t.delivery_start, source=SOURCE, event_id=tick_event_id(t))
            for t in ticks)
    return [(e.key.encode(), encode(e), headers(e)) for e in envs]


async def send_all(producer: AIOKafkaProducer, topic: str, values: list[Value]) -> list[Any]:
    """Send and wait for every ack; returns the RecordMetadata."""
    return list(await asyncio.gather(*[await producer.send(topic, v, key=k, headers=h)
                                       for k, v, h in values]))


def projection_on(topic: str) -> MarketProjection:
    projection = MarketProjection()
    projection.topics = (topic,)  # type: ignore[assignment]
    return projection


def settle() -> None:
    """Collect, then freeze what the bench holds (its N ticks / encoded values) out of the cyclic
    GC: a real gateway or projector does not keep 100 000 events alive, and every full
    collection of the bench process would otherwise walk them while the system is timed.
    Applied alike before the system and before the reference."""
    gc.collect()
    gc.freeze()


def cpu_s(proc: ManagedProcess) -> float:
    """User+system CPU seconds of a running child (Linux /proc; 0.0 elsewhere)."""
    try:
        stat = Path(f"/proc/{proc.proc.pid if proc.proc else 0}/stat").read_text()
    except OSError:
        return 0.0
    utime, stime = stat.rsplit(")", 1)[1].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


async def count_keys(consumer: AIOKafkaConsumer, prefix: bytes, target: int, timeout_s: float,
                     worker: ManagedProcess) -> float:
    """Consume until `target` records keyed ``prefix*`` were seen; returns perf_counter then."""
    seen, last, deadline = 0, None, time.perf_counter() + timeout_s
    while seen < target:
        if time.perf_counter() > deadline or not worker.running:
            raise RuntimeError(f"saw {seen}/{target} indicators; worker log:\n{worker.tail()}")
        for msgs in (await consumer.getmany(timeout_ms=50, max_records=20_000)).values():
            for m in msgs:
                if m.key and m.key.startswith(prefix):
                    seen, last = seen + 1, m
    done = time.perf_counter()
    assert last is not None and decode(last.value).event_type == "MarketIndicatorsUpdated"
    return done


async def bench_pipeline(ctx: Ctx, n: int) -> dict[str, Any]:
    prefix = f"B{ctx.run}"
    ticks, warm = make_ticks(n, prefix), make_ticks(MARKETS, prefix + "W")
    worker = ctx.child("indicators", "infra.cli", "worker", "indicators")
    reader = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, group_id=None,
                              enable_auto_commit=False, isolation_level="read_committed")
    producer = make_producer(ctx.bootstrap)
    await reader.start()
    await producer.start()
    try:
        parts = await partitions_of(reader, [INDICATORS.name])
        reader.assign(parts)
        await reader.seek_to_end(*parts)
        for tp in parts:
            await reader.position(tp)  # resolve the seek before anything is produced
        worker.start()
        t_boot = time.perf_counter()
        await publish_ticks(producer, warm, source=SOURCE)
        await count_keys(reader, f"{prefix}W_".encode(), MARKETS, 180, worker)
        boot_s = time.perf_counter() - t_boot

        async def publish() -> float:
            await publish_ticks(producer, ticks, source=SOURCE)
            return time.perf_counter()

        settle()
        cpu0, t0 = cpu_s(worker), time.perf_counter()
        pub = asyncio.create_task(publish())
        t_end = await count_keys(reader, f"{prefix}_".encode(), n, 120 + n / 100, worker)
        cpu, t_pub = cpu_s(worker) - cpu0, await pub
    finally:
        await asyncio.to_thread(worker.stop)
        await reader.stop()
        await producer.stop()

    # references: bare consume -> produce of N records of the same topic; first with the batch
    # size of the worker's producers (what the table compares with), then with aiokafka's
    # default 16 KiB (make_producer's; the bench's reference before the worker's producers got
    # bigger batches: a bare loop is bound by produce round trips with it)
    ref = await bare_loop(ctx, n, "ref", max_batch_size=MAX_BATCH_BYTES)
    ref_16k = await bare_loop(ctx, n, "ref16k")
    eps = n / (t_end - t0)
    return {"events": n, "events_per_s": eps, "reference_events_per_s": ref, "ratio": eps / ref,
            "reference_16k_batches_events_per_s": ref_16k, "ratio_16k_batches": eps / ref_16k,
            "publish_ticks_events_per_s": n / (t_pub - t0), "worker_warmup_s": boot_s,
            "worker_cpu_ms_per_event": cpu * 1000 / n, "worker_cpu_share": cpu / (t_end - t0)}


async def bare_loop(ctx: Ctx, n: int, name: str, **producer_kwargs: Any) -> float:
    """events/s of a bare aiokafka loop (fresh consumer group) that reads N records of the tick
    topic from the start, decodes nothing and sends each value with its key to a scratch topic
    (`make_producer`: idempotent, acks=all); from its first record received to the last ack."""
    consumer = AIOKafkaConsumer(PRICE_TICKS.name, bootstrap_servers=ctx.bootstrap,
                                group_id=f"bench-{name}-{ctx.run}", auto_offset_reset="earliest")
    producer = make_producer(ctx.bootstrap, **producer_kwargs)
    await consumer.start()
    await producer.start()
    futs: list[Any] = []
    t_ref = 0.0
    settle()
    try:
        while len(futs) < n:
            for msgs in (await consumer.getmany(timeout_ms=100, max_records=10_000)).values():
                t_ref = t_ref or time.perf_counter()
                futs += [await producer.send(f"bench.{ctx.run}.scratch", m.value, key=m.key)
                         for m in msgs[:n - len(futs)]]
        await asyncio.gather(*futs)
        return n / (time.perf_counter() - t_ref)
    finally:
        await consumer.stop()
        await producer.stop()


async def bench_projection(ctx: Ctx, n: int) -> dict[str, Any]:
    topic, schema = f"bench.{ctx.run}.projection", f"bench_{ctx.run}_catchup"
    values = encoded(make_ticks(n, f"B{ctx.run}P"))
    producer = make_producer(ctx.bootstrap)
    await producer.start()
    try:
        await send_all(producer, topic, values)
    finally:
        await producer.stop()
    runner = ProjectionRunner(projection_on(topic), ctx.dsn, ctx.bootstrap, schema=schema,
                              tracking_name=schema, max_batch=10_000)
    await runner.open()
    settle()
    try:
        t0 = time.perf_counter()
        returned = await runner.catch_up()
        proj_s = time.perf_counter() - t0
    finally:
        await runner.close()
    rows = [(e.payload.market, e.payload.delivery_start, e.payload.delivery_end,
             e.payload.resolution, e.payload.bidding_zone, e.payload.price_eur_mwh,
             e.payload.volume_mwh, e.payload.data_source, e.event_id)
            for e in (decode(v) for _, v, _ in values)]
    conn = await asyncpg.connect(ctx.dsn)
    try:
        projected = await conn.fetchval(f'SELECT count(*) FROM "{schema}".prices')
        await conn.execute(f'CREATE TABLE "{schema}".copy_ref '
                           f'(LIKE "{schema}".prices INCLUDING ALL)')
        settle()
        t0 = time.perf_counter()
        for i in range(0, len(rows), 10_000):
            await conn.copy_records_to_table("copy_ref", schema_name=schema,
                                             records=rows[i:i + 10_000], columns=PRICE_COLS)
        copy_s = time.perf_counter() - t0
    finally:
        await conn.close()
    if projected != n:  # checked on the table: catch_up() counts partitions, not messages
        raise RuntimeError(f"projection table holds {projected} rows, expected {n}")
    consume_s = await consume_only(ctx, topic, n)
    settle()
    t0 = time.perf_counter()
    with no_cyclic_gc():  # as `ProjectionRunner._decode` does
        decoded = [decode(v) for _, v, _ in values]
    decode_s = time.perf_counter() - t0
    del decoded
    return {"events": n, "events_per_s": n / proj_s, "reference_events_per_s": n / copy_s,
            "ratio": copy_s / proj_s, "catch_up_returned": returned,
            "consume_only_events_per_s": n / consume_s, "decode_only_events_per_s": n / decode_s,
            "floor_events_per_s": n / (consume_s + decode_s),
            "floor_ratio": copy_s / (consume_s + decode_s)}


async def consume_only(ctx: Ctx, topic: str, n: int) -> float:
    """Seconds for a consumer with the runner's settings to fetch the N records of `topic` from
    the start, decoding nothing (the Kafka client's share of a projection)."""
    consumer = projection_consumer(ctx.bootstrap)
    await consumer.start()
    try:
        parts = await partitions_of(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        settle()
        seen, t0 = 0, time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            seen += sum(len(msgs) for msgs in batch.values())
        return time.perf_counter() - t0
    finally:
        await consumer.stop()


async def bench_lag(ctx: Ctx, rate: int, seconds: float) -> dict[str, Any]:
    topic, name, warm_n = f"bench.{ctx.run}.lag", f"bench_{ctx.run}_lag", 300
    values = encoded(make_ticks(warm_n + int(rate * seconds), f"B{ctx.run}L"))
    proc = ctx.child("projector", "bench.market_pipeline", "--projector", topic, name)
    conn = await asyncpg.connect(ctx.dsn)
    await conn.execute(META_SQL)  # before the projector starts, so the poll never fails
    producer = make_producer(ctx.bootstrap)
    await producer.start()
    seen: dict[int, list[tuple[int, float]]] = {}  # partition -> [(stored offset, first seen)]
    stop = asyncio.Event()

    async def poll() -> None:
        sql = 'SELECT partition, "offset" FROM bess_meta.projection_offsets WHERE projection=$1'
        while not stop.is_set():
            rows, now = await conn.fetch(sql, name), time.perf_counter()
            for r in rows:
                obs = seen.setdefault(r["partition"], [])
                if not obs or r["offset"] > obs[-1][0]:
                    obs.append((r["offset"], now))
            await asyncio.sleep(0.005)

    async def visible(mds: list[Any], timeout_s: float) -> None:
        want: dict[int, int] = {}
        for md in mds:
            want[md.partition] = max(want.get(md.partition, -1), md.offset)
        deadline = time.perf_counter() + timeout_s
        while any(not seen.get(p) or seen[p][-1][0] < o for p, o in want.items()):
            if time.perf_counter() > deadline or not proc.running:
                raise RuntimeError(f"projector did not catch up; log:\n{proc.tail()}")
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    try:
        proc.start()
        await visible(await send_all(producer, topic, values[:warm_n]), 120)
        live, per_slot, sent = values[warm_n:], max(1, round(rate / 100)), []
        t0 = time.perf_counter()
        for slot, i in enumerate(range(0, len(live), per_slot)):
            await asyncio.sleep(max(0.0, t0 + slot / 100 - time.perf_counter()))
            for k, v, h in live[i:i + per_slot]:
                sent.append((time.perf_counter(), await producer.send(topic, v, key=k, headers=h)))
        achieved = len(live) / (time.perf_counter() - t0)
        mds = list(await asyncio.gather(*(f for _, f in sent)))
        await visible(mds, 60)
    finally:
        stop.set()
        await poller
        await asyncio.to_thread(proc.stop)
        await producer.stop()
        await conn.close()
    offsets = {p: [o for o, _ in obs] for p, obs in seen.items()}
    lags = sorted((seen[md.partition][bisect.bisect_left(offsets[md.partition], md.offset)][1]
                   - ts) * 1000 for (ts, _), md in zip(sent, mds, strict=True))
    p50, p99 = (lags[max(0, math.ceil(q * len(lags)) - 1)] for q in (0.50, 0.99))
    return {"events": len(lags), "target_rate": rate, "achieved_rate": achieved,
            "p50_ms": p50, "p99_ms": p99, "max_ms": lags[-1]}


async def run_projector(topic: str, name: str) -> None:
    """Hidden ``--projector`` mode: `bess projector`'s run() on a bench topic/schema/tracking."""
    runner = ProjectionRunner(projection_on(topic), os.environ["BESS_POSTGRES_DSN"],
                              os.environ["BESS_KAFKA_BOOTSTRAP"], schema=name, tracking_name=name)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, runner.stop)
    await runner.run()


async def run_all(ctx: Ctx, n: int, rate: int, seconds: float,
                  only: tuple[str, ...] = STAGES) -> dict[str, Any]:
    extra = tuple(Topic(f"bench.{ctx.run}.{t}", "market", 3, (PriceTickReceived,), "bench")
                  for t in ("scratch", "projection", "lag"))
    await ensure_topics(ctx.bootstrap, all_topics() + extra, attempts=60)
    results: dict[str, Any] = {}
    stages: dict[str, tuple[Callable[[], Awaitable[dict[str, Any]]], float]] = {
        "pipeline": (lambda: bench_pipeline(ctx, n), 400 + n / 100),
        "projection": (lambda: bench_projection(ctx, n), 120 + n / 500),
        "lag": (lambda: bench_lag(ctx, rate, seconds), 240 + seconds)}
    for name, (stage, timeout) in stages.items():
        if name not in only:
            results[name] = {"error": "not run (--stages)"}
            continue
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = await asyncio.wait_for(stage(), timeout)
        except Exception as exc:  # report the stage as failed and run the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    conn = await asyncpg.connect(ctx.dsn)  # drop this run's schemas (matters when external)
    for suffix in ("catchup", "lag"):
        await conn.execute(f'DROP SCHEMA IF EXISTS "bench_{ctx.run}_{suffix}" CASCADE')
    await conn.close()
    return results


def table(res: dict[str, Any]) -> str:
    c, p, lag = res["config"], res["pipeline"], res["lag"]
    lines = [f"N={c['events']:,} events over {MARKETS} markets, {c['cpus']} CPUs; kafka "
             f"{c['kafka']}; postgres {c['postgres']}\n",
             "| Measurement | System | Reference | Ratio | Target | Met |",
             "|---|---|---|---|---|---|"]
    for key, label, ref, goal in (
            ("pipeline", "Pipeline: CSV ticks -> MarketIndicatorsUpdated (exactly-once worker)",
             "bare aiokafka consume->produce", 0.40),
            ("projection", "Projection writes: ProjectionRunner(MarketProjection).catch_up",
             "asyncpg COPY, 10k batches", 0.50)):
        r, target = res[key], f">= {goal:.0%}"
        lines.append(f"| {label} | error: {r['error'].splitlines()[0]} | | | {target} | no |"
                     if "error" in r else f"| {label} | {r['events_per_s']:,.0f} ev/s | "
                     f"{r['reference_events_per_s']:,.0f} ev/s ({ref}) | {r['ratio']:.0%} | "
                     f"{target} | {'yes' if r['ratio'] >= goal else '**no**'} |")
    label = f"Projection lag at {c['lag_rate']:,} ev/s for {c['lag_seconds']:g} s"
    ok = "error" not in lag and lag["p99_ms"] <= 500
    lines.append(f"| {label} | error: {lag['error'].splitlines()[0]} | | | p99 <= 500 ms | no |"
                 if "error" in lag else f"| {label} | p50 {lag['p50_ms']:.0f} / p99 "
                 f"{lag['p99_ms']:.0f} / max {lag['max_ms']:.0f} ms ({lag['achieved_rate']:,.0f}"
                 f" ev/s sent) | | | p99 <= 500 ms | {'yes' if ok else '**no**'} |")
    proj = res["projection"]
    if "error" not in proj:
        lines.append(
            "\nprojection floor (no database): consume only "
            f"{proj['consume_only_events_per_s']:,.0f} ev/s (aiokafka, the runner's settings), "
            f"decode only {proj['decode_only_events_per_s']:,.0f} ev/s (`schemas.envelope."
            f"decode`); both in series {proj['floor_events_per_s']:,.0f} ev/s = "
            f"{proj['floor_ratio']:.0%} of COPY")
    if "error" not in p:
        lines.append(f"\nworker: {p['worker_cpu_ms_per_event']:.2f} ms CPU/event, busy "
                     f"{p['worker_cpu_share']:.0%} of the run; warm-up {p['worker_warmup_s']:.1f}"
                     f" s; publish_ticks {p['publish_ticks_events_per_s']:,.0f} ev/s\n"
                     f"pipeline reference with aiokafka's default 16 KiB batches (the worker's "
                     f"are {MAX_BATCH_BYTES // 1024} KiB): "
                     f"{p['reference_16k_batches_events_per_s']:,.0f} ev/s, ratio "
                     f"{p['ratio_16k_batches']:.0%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.market_pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, help="N of rows 1 and 2 (default 100000; quick 10000)")
    ap.add_argument("--quick", action="store_true", help="small N and a 3 s lag run")
    ap.add_argument("--lag-rate", type=int, default=5000, help="events/s of the lag run")
    ap.add_argument("--lag-seconds", type=float, help="length of the lag run (default 10; quick 3)")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help=f"comma-separated subset of {','.join(STAGES)} (default all)")
    ap.add_argument("--projector", nargs=2, metavar=("TOPIC", "NAME"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.projector:
        asyncio.run(run_projector(*args.projector))
        return 0
    n = args.events or (10_000 if args.quick else 100_000)
    seconds = args.lag_seconds or (3.0 if args.quick else 10.0)
    dsn, bootstrap = os.environ.get("BESS_POSTGRES_DSN"), os.environ.get("BESS_KAFKA_BOOTSTRAP")
    config = {"events": n, "markets": MARKETS, "lag_rate": args.lag_rate, "lag_seconds": seconds,
              "postgres": "external" if dsn else "embedded, fsync=off",
              "kafka": "external" if bootstrap else "embedded single node", "cpus": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="bess-bench-"))
    os.chmod(tmp, 0o755)  # as root, Postgres runs as `postgres` and must reach its data dir
    started: list[KafkaServer | PostgresServer] = []
    ctx: Ctx | None = None
    try:
        if not dsn:
            pg = PostgresServer(tmp / "postgres", port=free_port(), fsync=False)
            started.append(pg)
            pg.start()
            dsn = pg.dsn
        if not bootstrap:
            kafka = KafkaServer(tmp / "kafka", port=free_port(), controller_port=free_port())
            started.append(kafka)
            kafka.start()
            bootstrap = kafka.bootstrap
        env = {"BESS_KAFKA_BOOTSTRAP": bootstrap, "BESS_POSTGRES_DSN": dsn,
               "BESS_HOME": str(tmp / "home"), "BESS_LOG_LEVEL": "WARNING"}
        ctx = Ctx(bootstrap, dsn, tmp, uuid.uuid4().hex[:8], env)
        coro = run_all(ctx, n, args.lag_rate, seconds, tuple(args.stages.split(",")))
        results = {"config": config, **asyncio.run(asyncio.wait_for(coro, 900 + n / 50 + seconds))}
    finally:
        for proc in ctx.children if ctx else []:
            proc.stop()
        for service in reversed(started):
            service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results) + f"\n\n(also in {OUT.relative_to(PROJECT_ROOT)})")
    return 0 if all("error" not in results[k] for k in args.stages.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
