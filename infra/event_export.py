"""Export a time range of a topic for analysis: JSON Lines (whole envelopes) or CSV (flat payload).

`bess events export TOPIC --from ... --to ...` reads committed messages only (read_committed)
up to each partition's end offset at the start of the export, so a live topic still gives a
finite, reproducible file. The range is in event time (`occurred_at`, the default: a replay of
2023 prices is exported by its 2023 dates; the whole topic is scanned) or in log time
(``--by log``: the Kafka message timestamp, when it was published; partitions start at the
first offset at or after `--from` through Kafka's time index, so only the range is read).
Messages are written in time order across partitions. Messages that do not decode are written
to JSON Lines with their error (``{"error": ..., "topic", "partition", "offset"}``), skipped
in CSV, and counted in the summary.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka_io import partitions_of
from schemas.envelope import MessageDecodeError, decode


@dataclass
class ExportSummary:
    written: int = 0
    undecodable: int = 0
    first: datetime | None = None
    last: datetime | None = None


@dataclass(frozen=True)
class _Offset:
    offset: int


@dataclass(frozen=True, order=True)
class _Item:
    timestamp_ms: int
    partition: int
    offset: int
    value: bytes


async def read_range(bootstrap: str, topic: str, start: datetime, end: datetime,
                     by: str = "log") -> list[_Item]:
    """Committed records of `topic` up to the current end offsets, per partition in offset
    order: with ``by="log"`` those with start <= message timestamp < end, with ``by="event"``
    all of them (the caller filters by `occurred_at`). Raises ValueError for an unknown topic
    or a naive datetime."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("--from and --to need a timezone (e.g. 2023-01-01T00:00Z)")
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    items: list[_Item] = []
    try:
        parts = await partitions_of(consumer, [topic])
        if not parts:
            raise ValueError(f"topic {topic!r} does not exist")
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        if by == "log":
            firsts = await consumer.offsets_for_times({tp: start_ms for tp in parts})
        else:
            begins = await consumer.beginning_offsets(parts)
            firsts = {tp: _Offset(begins[tp]) for tp in parts}
            end_ms = 2 ** 62
        todo: dict[TopicPartition, int] = {}
        for tp in parts:
            first = firsts.get(tp)
            if first is None or first.offset >= ends[tp]:
                continue
            consumer.seek(tp, first.offset)
            todo[tp] = ends[tp]
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= todo.get(tp, -1) or r.timestamp >= end_ms:
                        todo.pop(tp, None)
                        break
                    items.append(_Item(r.timestamp, tp.partition, r.offset, r.value))
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    todo.pop(tp)
    finally:
        await consumer.stop()
    return items


def _merged(items: list[_Item]) -> Iterator[_Item]:
    by_partition: dict[int, list[_Item]] = {}
    for item in items:
        by_partition.setdefault(item.partition, []).append(item)
    return heapq.merge(*by_partition.values())


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    for key, item in value.items():
        if isinstance(item, dict):
            _flat(f"{prefix}{key}.", item, out)
        elif isinstance(item, list):
            out[f"{prefix}{key}"] = orjson.dumps(item).decode()
        else:
            out[f"{prefix}{key}"] = item


def flatten(envelope_json: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: envelope fields, then ``payload.<field>`` (nested objects dotted, lists as
    JSON)."""
    row = {k: v for k, v in envelope_json.items() if k != "payload"}
    _flat("payload.", envelope_json.get("payload", {}), row)
    return row


async def export(bootstrap: str, topic: str, start: datetime, end: datetime, out: TextIO,
                 fmt: str = "jsonl", by: str = "event") -> ExportSummary:
    """Write the range to `out` as ``jsonl`` or ``csv``; returns what was written."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError("format must be jsonl or csv")
    if by not in ("event", "log"):
        raise ValueError("by must be event or log")
    summary = ExportSummary()
    rows: list[dict[str, Any]] = []
    decoded: list[tuple[datetime, _Item, Any]] = []
    for item in _merged(await read_range(bootstrap, topic, start, end, by)):
        try:
            envelope = decode(item.value)
        except MessageDecodeError as exc:
            decoded.append((start, item, exc))
            continue
        if by == "log" or start <= envelope.occurred_at < end:
            decoded.append((envelope.occurred_at, item, envelope))
    if by == "event":
        decoded.sort(key=lambda d: (d[0], d[1].partition, d[1].offset))
    for _, item, envelope in decoded:
        if isinstance(envelope, MessageDecodeError):
            exc = envelope
            summary.undecodable += 1
            if fmt == "jsonl":
                out.write(orjson.dumps({"error": exc.reason, "topic": topic,
                                        "partition": item.partition,
                                        "offset": item.offset}).decode() + "\n")
            continue
        if fmt == "jsonl":  # the message as on the wire (validated by decoding it)
            out.write(item.value.decode() + "\n")
        else:
            rows.append(flatten(orjson.loads(item.value)))
        summary.written += 1
        summary.first = summary.first or envelope.occurred_at
        summary.last = envelope.occurred_at
    if fmt == "csv" and rows:
        fields: dict[str, None] = {}
        for row in rows:
            fields.update(dict.fromkeys(row))
        writer = csv.DictWriter(out, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return summary


async def export_to_path(bootstrap: str, topic: str, start: datetime, end: datetime,
                         path: Path | None, fmt: str, by: str = "event") -> ExportSummary:
    import sys

    if path is None:
        return await export(bootstrap, topic, start, end, sys.stdout, fmt, by)
    with path.open("w", newline="") as out:
        return await export(bootstrap, topic, start, end, out, fmt, by)
