"""Exactly-once stateful stream processing on aiokafka transactions (KIP-98 read-process-write).

Why not faust's exactly-once: faust-streaming routes every output through the transactional
producer of the *destination* partition, so an output to a re-keyed topic (order events keyed
by site from a matching engine keyed by market) is not in the transaction of the input offsets;
`tests/integration/test_trading.py` saw duplicated trades after a SIGKILL that way. Here every
input partition has its own transactional producer (``transactional.id = bess-<name>-<p>``, so a
restarted worker fences its zombie) and ONE transaction per fetched batch of that partition
holds: all outputs, the processor's state changes (a compacted changelog topic, written to the
same partition number) and the consumed offsets. Either all of it commits or none of it.

Inputs are co-partitioned topics consumed in the consumer group ``bess-<name>``; scale by
starting more workers (up to the partition count). On assignment the state of a partition is
restored from its changelog; on revocation it is dropped.
"""

from __future__ import annotations

import asyncio
import gc
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import TopicAlreadyExistsError

from infra.kafka_io import Record, dead_letter, partitions_of, send_batches
from infra.logging import get_logger
from infra.metrics import DEAD_LETTERS, EVENTS
from schemas.envelope import Envelope, MessageDecodeError, decode, encode, headers

log = get_logger("streams.runtime")

MAX_BATCH_BYTES = 512 * 1024
"""Record batch size of the transactional producers. With aiokafka's 16 KiB default a full
batch waits for the previous produce round trip (one request in flight per broker), i.e. one
round trip per ~35 events; this holds a transaction's outputs per partition in one or two
batches, below the broker's default ``message.max.bytes`` of 1 MiB."""

FETCH_MAX_WAIT_MS = 10
"""How long the broker may hold a fetch that has no committed data yet. A read_committed fetch
that is waiting is not completed when a transaction commits (the last stable offset moves, no
new bytes arrive), so with aiokafka's 500 ms default every transactional hop added up to
half a second of latency; 10 ms costs at most 100 empty fetches a second per idle worker."""


@dataclass(frozen=True)
class Emit:
    """One output record; `partition` None = the producer's key partitioner (murmur2)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None

    @classmethod
    def envelope(cls, topic: str, envelope: Envelope[Any], partition: int | None = None) -> Emit:
        return cls(topic, envelope.key.encode(), encode(envelope), headers(envelope), partition)


@dataclass
class Output:
    """What handling one batch produced: records to send and state changes (None = delete)."""

    emits: list[Emit] = field(default_factory=list)
    state: dict[bytes, bytes | None] = field(default_factory=dict)


@cache
def _events(processor: str, topic: str) -> Any:
    """The `EVENTS` child of (processor, topic): ``labels()`` costs more than the increment."""
    return EVENTS.labels(processor, topic)


class Processor(ABC):
    """A processor: name, co-partitioned input topics, per-partition state and `handle`."""

    name: str
    inputs: tuple[str, ...]
    partitions: int

    def decode(self, record: Any, out: Output, accepted: tuple[type, ...]) -> Envelope[Any] | None:
        """Decode a record; on failure add a dead letter to `out` and return None."""
        _events(self.name, record.topic).inc()
        try:
            envelope = decode(record.value)
            if not isinstance(envelope.payload, accepted):
                raise MessageDecodeError(f"{envelope.event_type} does not belong on {record.topic}")
            return envelope
        except MessageDecodeError as exc:
            letter = dead_letter(topic=record.topic, partition=record.partition,
                                 offset=record.offset, key=record.key, value=record.value,
                                 error=exc.reason, processor=self.name,
                                 timestamp_ms=record.timestamp)
            out.emits.append(Emit.envelope(f"{record.topic}.dlq", letter))
            DEAD_LETTERS.labels(self.name, record.topic).inc()
            log.warning("dead-lettered", topic=record.topic, partition=record.partition,
                        offset=record.offset, reason=exc.reason)
            return None

    @abstractmethod
    def restore(self, partition: int, state: dict[bytes, bytes]) -> None:
        """Rebuild the in-memory state of `partition` from its changelog."""

    def revoke(self, partition: int) -> None:  # noqa: B027 - optional hook
        """Drop the in-memory state of `partition`."""

    @abstractmethod
    def handle(self, partition: int, records: Sequence[Any], out: Output) -> None:
        """Process `records` (of one input partition number, in offset order per topic)."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.runtime._revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.runtime._assign({tp.partition for tp in assigned})


def transactional_producer(bootstrap: str, transactional_id: str, *, linger_ms: int = 5,
                           max_batch_bytes: int = MAX_BATCH_BYTES) -> AIOKafkaProducer:
    """The (unstarted) producer of one input partition's transactions."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                            enable_idempotence=True, linger_ms=linger_ms,
                            # the next batch's AddOffsetsToTxn/EndTxn often meets
                            # CONCURRENT_TRANSACTIONS (markers of the last commit still being
                            # written); aiokafka's 100 ms default retry backoff then dominated
                            # order-to-trade latency. Back-to-back transactions on the embedded
                            # broker: median 35 ms each at 20 ms backoff, 13 ms at 5 ms;
                            # bench.trading_e2e p50 ~250 -> ~205 ms
                            retry_backoff_ms=5, max_batch_size=max_batch_bytes)


class Runtime:
    """Runs one `Processor` exactly-once against `bootstrap`."""

    def __init__(self, processor: Processor, bootstrap: str, *, max_records: int = 5000,
                 linger_ms: int = 5, max_batch_bytes: int = MAX_BATCH_BYTES,
                 max_partition_fetch_bytes: int = 1024 * 1024,
                 fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
        self.p = processor
        self.bootstrap = bootstrap
        self.group = f"bess-{processor.name}"
        self.changelog = f"bess-{processor.name}-state"
        self.max_records = max_records
        self.linger_ms = linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.producers: dict[int, AIOKafkaProducer] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()  # the rebalance listener runs concurrently with the loop

    async def _ensure_changelog(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.changelog not in await admin.list_topics():
                await admin.create_topics([NewTopic(
                    self.changelog, self.p.partitions, 1,
                    topic_configs={"cleanup.policy": "compact"})])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    async def _read_changelog(self, partition: int) -> dict[bytes, bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    isolation_level="read_committed", enable_auto_commit=False)
        await consumer.start()
        state: dict[bytes, bytes] = {}
        try:
            tp = TopicPartition(self.changelog, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for msg in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if msg.value is None:
                        state.pop(msg.key, None)
                    else:
                        state[msg.key] = msg.value
        finally:
            await consumer.stop()
        return state

    async def _assign(self, partitions: set[int]) -> None:
        async with self._lock:
            await self._assign_locked(partitions)

    async def _assign_locked(self, partitions: set[int]) -> None:
        for p in sorted(partitions):
            if p in self.producers:
                continue
            producer = transactional_producer(self.bootstrap, f"{self.group}-{p}",
                                              linger_ms=self.linger_ms,
                                              max_batch_bytes=self.max_batch_bytes)
            await producer.start()  # init_transactions: fences a zombie with the same id
            # restore BEFORE publishing the producer: the loop processes a partition as soon as
            # it has a producer, and must never see a half-restored state
            self.p.restore(p, await self._read_changelog(p))
            self.producers[p] = producer
            log.info("partition assigned", processor=self.p.name, partition=p)

    async def _revoke(self, partitions: set[int]) -> None:
        async with self._lock:
            self._revoke_locked(partitions)
            for p in partitions:
                producer = self.producers.pop(p, None)
                if producer is not None:
                    await producer.stop()

    def _revoke_locked(self, partitions: set[int]) -> None:
        for p in partitions:
            self.p.revoke(p)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self._ensure_changelog()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest",
            max_poll_records=self.max_records,
            max_partition_fetch_bytes=self.max_partition_fetch_bytes,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            # range assignment keeps partition p of every co-partitioned input on one worker
            partition_assignment_strategy=(RangePartitionAssignor,))
        await self.consumer.start()
        missing = set(self.p.inputs) - {tp.topic for tp in await partitions_of(
            self.consumer, list(self.p.inputs))}
        if missing:
            await self.consumer.stop()
            raise RuntimeError(f"input topics missing: {sorted(missing)}; run `bess topics create`")
        self.consumer.subscribe(list(self.p.inputs), listener=_Listener(self))
        # what exists now (modules, schemas, clients) lives as long as the process: keep it
        # out of the cyclic GC, whose full collections would otherwise walk it every few
        # thousand events
        gc.collect()
        gc.freeze()
        log.info("processor started", processor=self.p.name, inputs=self.p.inputs)
        try:
            while not self._stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                by_partition: dict[int, list[tuple[TopicPartition, list[Any]]]] = defaultdict(list)
                for tp, records in batch.items():
                    by_partition[tp.partition].append((tp, records))
                # one transaction per partition, each on its own producer: run them side by
                # side, so that one partition's commit round trips overlap the next one's
                # handling (each partition's records still go through one transaction, in order)
                await asyncio.gather(*(self._transact(p, parts)
                                       for p, parts in by_partition.items()))
        finally:
            await self.consumer.stop()
            for producer in self.producers.values():
                await producer.stop()

    async def _transact(self, p: int, parts: list[tuple[TopicPartition, list[Any]]]) -> None:
        assert self.consumer is not None
        assigned = {tp.partition for tp in self.consumer.assignment()}
        if p not in assigned:  # revoked meanwhile: the new owner processes these records
            return
        if p not in self.producers:  # records can arrive before the listener finished
            await self._assign({p})
        producer = self.producers[p]
        out = Output()
        records = [r for _, rs in parts for r in rs]
        log.debug("batch", processor=self.p.name, partition=p, records=len(records))
        try:
            self.p.handle(p, records, out)
            async with producer.transaction():
                await self._queue(producer, out, p)
                await producer.send_offsets_to_transaction(
                    {tp: rs[-1].offset + 1 for tp, rs in parts}, self.group)
        except Exception:
            # nothing of this batch is visible: rewind the input and rebuild the state
            log.exception("batch failed, rewinding", processor=self.p.name, partition=p)
            for tp, rs in parts:
                self.consumer.seek(tp, rs[0].offset)
            self.p.restore(p, await self._read_changelog(p))
            await asyncio.sleep(1.0)

    async def _queue(self, producer: AIOKafkaProducer, out: Output, p: int) -> None:
        """Queue `out` in the open transaction of `producer`: outputs where aiokafka's default
        partitioner sends them (murmur2 of the key; random without a key) unless they name a
        partition, state changes to partition `p` of the changelog.

        One record batch per destination partition, in emit order: appending to a batch costs
        a fraction of a `send()` per record. The transaction's commit waits for their delivery
        exactly as for `send()`."""
        records: list[Record] = [(e.topic, e.partition, e.key, e.value, e.headers)
                                 for e in out.emits]
        records += [(self.changelog, p, k, v, []) for k, v in out.state.items()]
        await send_batches(producer, records)
