"""Kafka plumbing over aiokafka: topic creation from the catalog, producers, dead letters."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from schemas.catalog import Topic, all_topics, internal_topics
from schemas.dead_letter import MessageDeadLettered
from schemas.envelope import Envelope, encode, headers, new_envelope


async def ensure_topics(bootstrap: str, topics: tuple[Topic, ...] | None = None,
                        replication_factor: int = 1, attempts: int = 1) -> list[str]:
    """Create the catalog's topics that do not exist yet; returns the names created. With
    `attempts` > 1, a failure is retried once a second (a freshly started broker opens its
    port before it serves admin requests); the last failure is raised."""
    for _ in range(1, attempts):
        try:
            return await _ensure_topics(bootstrap, topics, replication_factor)
        except Exception:
            await asyncio.sleep(1)
    return await _ensure_topics(bootstrap, topics, replication_factor)


async def _ensure_topics(bootstrap: str, topics: tuple[Topic, ...] | None,
                         replication_factor: int) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or all_topics() + internal_topics()) if t.name not in existing]
        created = []
        for topic in wanted:
            try:
                await admin.create_topics([NewTopic(topic.name, topic.partitions,
                                                    replication_factor,
                                                    topic_configs=topic.config())])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                continue
        return created
    finally:
        await admin.close()


def make_producer(bootstrap: str, **kwargs: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all), lz4-free so no native codec is needed; 512 KiB record
    batches (aiokafka's 16 KiB default makes every ~35 events wait for a produce round trip)."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                            linger_ms=kwargs.pop("linger_ms", 5),
                            max_batch_size=kwargs.pop("max_batch_size", 512 * 1024), **kwargs)


_PARTITIONER = DefaultPartitioner()
"""What an AIOKafkaProducer without a `partitioner` argument (ours) uses."""

_PARTITION_MEMO: dict[tuple[str, int], dict[bytes, int]] = {}


def key_partition(topic: str, key: bytes | None, partitions: list[int]) -> int:
    """The partition aiokafka's default partitioner picks for `key` among the sorted
    `partitions` of `topic` (murmur2, in pure Python there: memoised per key)."""
    if key is None:
        return int(_PARTITIONER(None, partitions, partitions))
    memo = _PARTITION_MEMO.get((topic, len(partitions)))
    if memo is None or len(memo) > 100_000:
        memo = _PARTITION_MEMO[(topic, len(partitions))] = {}
    partition = memo.get(key)
    if partition is None:
        partition = memo[key] = int(_PARTITIONER(key, partitions, partitions))
    return partition


async def publish(producer: AIOKafkaProducer, topic: str, envelope: Envelope[Any]) -> Any:
    """Send one envelope (key = envelope.key); returns the delivery future. The partition is
    the one the producer's default partitioner would choose (memoised per key)."""
    key = envelope.key.encode()
    known = producer.client.cluster.partitions_for_topic(topic)  # None before the metadata
    partition = key_partition(topic, key, sorted(known)) if known else None
    return await producer.send(topic, encode(envelope), key=key, partition=partition,
                               headers=headers(envelope))


Record = tuple[str, int | None, bytes | None, bytes | None, list[tuple[str, bytes]]]
"""(topic, partition or None = the key's partition, key, value, headers) of one record."""


async def send_batches(producer: AIOKafkaProducer, records: list[Record]) -> list[Any]:
    """Send `records` as record batches, one or more per destination partition, in order;
    returns the delivery futures (one per record batch). A record without a partition goes
    where aiokafka's default partitioner would send it (`key_partition`).

    Appending to a record batch costs a fraction of a ``send()`` per record (aiokafka's
    ``send`` builds a future and a message per record); with an idempotent producer the
    batches of one partition are delivered in the order sent, as ``send`` would, and inside a
    transaction its commit waits for them exactly as for ``send()``."""
    partitions = {topic: sorted(await producer.partitions_for(topic))
                  for topic in {r[0] for r in records}}
    batches: dict[tuple[str, int], Any] = {}
    futures = []
    for topic, partition, key, value, hs in records:
        if partition is None:
            partition = key_partition(topic, key, partitions[topic])
        batch = batches.get((topic, partition))
        if batch is None:
            batch = batches[(topic, partition)] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=hs) is None:
            batch.close()  # full
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[(topic, partition)] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=hs)
    for (topic, partition), batch in batches.items():
        batch.close()  # nothing else goes into it
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


async def publish_batch(producer: AIOKafkaProducer, topic: str,
                        envelopes: list[Envelope[Any]]) -> list[Any]:
    """Send `envelopes` (key = envelope.key) to `topic` as record batches (`send_batches`);
    returns the delivery futures, one per record batch."""
    return await send_batches(producer, [(topic, None, e.key.encode(), encode(e), headers(e))
                                         for e in envelopes])


def dead_letter(*, topic: str, partition: int, offset: int, key: bytes | None, value: bytes,
                error: str, processor: str,
                timestamp_ms: int | None = None) -> Envelope[MessageDeadLettered]:
    """The envelope for a message `processor` could not handle (goes to ``<topic>.dlq``)."""
    now = datetime.now(UTC)
    payload = MessageDeadLettered(
        original_topic=topic,
        original_partition=partition,
        original_offset=offset,
        original_timestamp=(
            datetime.fromtimestamp(timestamp_ms / 1000, UTC) if timestamp_ms else None
        ),
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value or b"").decode(),
        error=error[:2000],
        processor=processor,
    )
    return new_envelope(payload, occurred_at=now, source=processor)


async def partitions_of(
    consumer: AIOKafkaConsumer, topics: tuple[str, ...] | list[str]
) -> list[TopicPartition]:
    """All partitions of `topics` from fresh cluster metadata (missing topics give none)."""
    cluster = await consumer._client.fetch_all_metadata()  # the public topics() drops the cluster
    return [TopicPartition(t, p)
            for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
