"""Kafka plumbing over aiokafka: topic creation from the catalog, producers, dead letters."""

from __future__ import annotations

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
                        replication_factor: int = 1) -> list[str]:
    """Create the catalog's topics that do not exist yet; returns the names created."""
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


async def publish_batch(producer: AIOKafkaProducer, topic: str,
                        envelopes: list[Envelope[Any]]) -> list[Any]:
    """Send `envelopes` (key = envelope.key) as record batches, one or more per partition, in
    order; returns the delivery futures (one per record batch). Partitions as `publish`.

    Appending to a record batch costs a fraction of a ``send()`` per record (aiokafka's
    ``send`` builds a future and a message per record); with an idempotent producer the
    batches of one partition are delivered in the order sent, as ``send`` would."""
    partitions = sorted(await producer.partitions_for(topic))
    batches: dict[int, Any] = {}
    futures = []
    for envelope in envelopes:
        key = envelope.key.encode()
        partition = key_partition(topic, key, partitions)
        value, hs = encode(envelope), headers(envelope)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=hs) is None:
            batch.close()  # full
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=hs)
    for partition, batch in batches.items():
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


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
