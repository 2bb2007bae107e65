"""Shared pieces of the faust processors: app factory, decoding with dead-lettering, /metrics."""

from __future__ import annotations

from typing import Any

import faust

from infra.kafka_io import dead_letter
from infra.logging import get_logger
from infra.metrics import DEAD_LETTERS, render
from infra.settings import Settings
from schemas.catalog import Topic
from schemas.envelope import Envelope, MessageDecodeError, decode, encode, headers

log = get_logger("streams")


def create_faust_app(name: str, settings: Settings, *, web_port: int | None = None) -> faust.App:
    """A faust app for processor `name` (consumer group ``bess-<name>``), exactly-once.

    Values and keys are raw bytes: processors decode envelopes themselves so that malformed
    messages can be dead-lettered with the reason instead of crashing the agent.
    """
    datadir = settings.home / "faust" / name
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"bess-{name}",
        broker=f"kafka://{settings.bootstrap}",
        processing_guarantee="exactly_once",
        store="memory://",
        topic_replication_factor=1,
        topic_partitions=3,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_host="127.0.0.1",
        datadir=str(datadir),
        broker_commit_every=100,
        broker_commit_interval=0.5,
    )

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        body, content_type = render()
        return web.bytes(body, content_type=content_type)

    return app


def faust_topic(app: faust.App, topic: Topic) -> faust.TopicT:
    return app.topic(topic.name, partitions=topic.partitions, key_serializer="raw",
                     value_serializer="raw", internal=False)


async def decode_or_dead_letter(event: Any, processor: str, dlq: faust.TopicT,
                                expected: tuple[type, ...]) -> Envelope[Any] | None:
    """Decode `event.value`; on failure send it to `dlq` with the reason and return None."""
    msg = event.message
    try:
        envelope = decode(event.value)
        if not isinstance(envelope.payload, expected):
            raise MessageDecodeError(
                f"{envelope.event_type} does not belong on {msg.topic}"
            )
        return envelope
    except MessageDecodeError as exc:
        letter = dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                             key=event.key, value=event.value, error=exc.reason,
                             processor=processor, timestamp_ms=int(msg.timestamp * 1000))
        await dlq.send(key=letter.key.encode(), value=encode(letter), headers=headers(letter))
        DEAD_LETTERS.labels(processor, msg.topic).inc()
        log.warning("dead-lettered", topic=msg.topic, partition=msg.partition, offset=msg.offset,
                    reason=exc.reason)
        return None
