"""Projection framework: Kafka -> Postgres tables, exactly once per (topic, partition, offset).

Each projection owns one Postgres schema. A runner consumes its topics (read_committed, no
consumer group: partitions are assigned explicitly) and writes every batch in ONE transaction
together with the consumed offsets in ``bess_meta.projection_offsets``; messages at or below the
stored offset are skipped, so a crash or a redelivery never double-counts (the tracking pattern
of the eventsourcing library, ``insert_pages_with_tracking``). Messages of other types still
advance the offset; undecodable ones go to ``<topic>.dlq``.

`rebuild` replays the topics from the beginning into a fresh schema and swaps it in atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.kafka_io import dead_letter, make_producer, partitions_of, publish
from infra.logging import get_logger
from infra.metrics import DEAD_LETTERS, EVENTS, PROJECTION_BATCH, PROJECTION_LAG
from schemas.envelope import Envelope, MessageDecodeError, decode

log = get_logger("projections")

META_SQL = """
CREATE SCHEMA IF NOT EXISTS bess_meta;
CREATE TABLE IF NOT EXISTS bess_meta.projection_offsets (
    projection text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
CREATE TABLE IF NOT EXISTS bess_meta.schema_migrations (
    projection text NOT NULL,
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, version)
);
"""


class Record(NamedTuple):
    """One consumed message, decoded (immutable; a tuple: cheap to build 10 000 times a batch)."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope[Any]


Decoded = tuple[TopicPartition, list[Any], list[Envelope[Any] | None]]
"""One partition's fetched messages and their envelopes (None: dead-lettered)."""

DECODE_CHUNK = 500
"""Messages decoded between two yields to the event loop (about 5 ms of work)."""


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic GC over a synchronous burst of allocations (a chunk of envelopes or rows,
    which hold no cycles and stay alive for the batch): one young collection after the burst
    instead of one per 700 objects, so the full collections that follow every hundred young
    ones, each walking all live batches, become rare. Use it around code without ``await``."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Resync(Exception):
    """The stored offsets moved under the runner; it must re-seek."""


class Projection(ABC):
    """A read model. Subclasses set `name`, `schema`, `topics`, `migrations` and `apply`.

    `migrations` are SQL scripts, applied in order, with ``{schema}`` replaced by the target
    schema (so a rebuild can build into a shadow schema).
    """

    name: str
    schema: str
    topics: tuple[str, ...]
    migrations: tuple[str, ...]

    async def prepare(self, conn: asyncpg.Connection, schema: str) -> None:  # noqa: B027
        """Per-connection set-up (temp tables, prepared statements); default nothing."""

    @abstractmethod
    async def apply(self, conn: asyncpg.Connection, schema: str, records: Sequence[Record]) -> None:
        """Write `records` (in log order per partition) inside the caller's transaction."""


def lock_id(name: str) -> int:
    return zlib.crc32(f"projection:{name}".encode())


async def migrate(conn: asyncpg.Connection, projection: Projection, schema: str | None = None,
                  tracking_name: str | None = None) -> None:
    """Create the meta tables and apply pending migrations of `projection` into `schema`."""
    schema = schema or projection.schema
    tracking_name = tracking_name or projection.name
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id("migrate"))
        await conn.execute(META_SQL)
        done = {r["version"] for r in await conn.fetch(
            "SELECT version FROM bess_meta.schema_migrations WHERE projection=$1", tracking_name)}
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for version, sql in enumerate(projection.migrations, start=1):
            if version in done:
                continue
            await conn.execute(sql.replace("{schema}", schema))
            await conn.execute("INSERT INTO bess_meta.schema_migrations(projection, version) "
                               "VALUES ($1, $2)", tracking_name, version)


async def stored_offsets(
    conn: asyncpg.Connection, name: str, lock: bool = False
) -> dict[tuple[str, int], int]:
    sql = ('SELECT topic, partition, "offset" FROM bess_meta.projection_offsets '
           "WHERE projection=$1" + (" FOR UPDATE" if lock else ""))
    return {(r["topic"], r["partition"]): r["offset"] for r in await conn.fetch(sql, name)}


def projection_consumer(bootstrap: str) -> AIOKafkaConsumer:
    """The (unstarted) consumer of a runner: read_committed, no group (partitions are assigned
    explicitly), large fetches for 10 000-message batches."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        isolation_level="read_committed", auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024)


class ProjectionRunner:
    """Runs one projection: consume, decode, apply + track offsets in one transaction."""

    def __init__(self, projection: Projection, dsn: str, bootstrap: str, *,
                 schema: str | None = None, tracking_name: str | None = None,
                 max_batch: int = 10_000, poll_ms: int = 200):
        self.projection = projection
        self.dsn = dsn
        self.bootstrap = bootstrap
        self.schema = schema or projection.schema
        self.tracking_name = tracking_name or projection.name
        self.max_batch = max_batch
        self.poll_ms = poll_ms
        self.positions: dict[tuple[str, int], int] = {}
        self._conn: asyncpg.Connection | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()

    async def open(self) -> None:
        self._conn = await asyncpg.connect(self.dsn)
        await migrate(self._conn, self.projection, self.schema, self.tracking_name)
        await self.projection.prepare(self._conn, self.schema)
        self._consumer = projection_consumer(self.bootstrap)
        await self._consumer.start()
        parts = await partitions_of(self._consumer, self.projection.topics)
        if len({tp.topic for tp in parts}) != len(self.projection.topics):
            await self.close()
            raise RuntimeError(
                f"topics {self.projection.topics} do not exist: run `bess topics create`"
            )
        self._consumer.assign(parts)
        await self._seek_to_stored()

    async def _seek_to_stored(self) -> None:
        assert self._conn is not None and self._consumer is not None
        stored = await stored_offsets(self._conn, self.tracking_name)
        for tp in self._consumer.assignment():
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset + 1)
        self.positions = dict(stored)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._conn is not None:
            await self._conn.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _dead_letter(self, msg: Any, reason: str) -> None:
        if self._producer is None:
            self._producer = make_producer(self.bootstrap)
            await self._producer.start()
        letter = dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                             key=msg.key, value=msg.value, error=reason,
                             processor=f"projection.{self.projection.name}",
                             timestamp_ms=msg.timestamp)
        await (await publish(self._producer, f"{msg.topic}.dlq", letter))
        DEAD_LETTERS.labels(f"projection.{self.projection.name}", msg.topic).inc()

    async def _decode(self, batch: dict[TopicPartition, list[Any]]) -> list[Decoded]:
        """Decode a fetched batch (dead-lettering what does not decode), yielding to the event
        loop every `DECODE_CHUNK` messages so that a commit in flight meanwhile advances."""
        decoded: list[Decoded] = []
        for tp, messages in batch.items():
            envelopes: list[Envelope[Any] | None] = []
            for i in range(0, len(messages), DECODE_CHUNK):
                chunk = messages[i:i + DECODE_CHUNK]
                try:  # the common case: every message decodes
                    with no_cyclic_gc():
                        envelopes += [decode(m.value) for m in chunk]
                except MessageDecodeError:
                    for msg in chunk:
                        try:
                            envelopes.append(decode(msg.value))
                        except MessageDecodeError as exc:
                            envelopes.append(None)
                            await self._dead_letter(msg, exc.reason)
                await asyncio.sleep(0)
            decoded.append((tp, messages, envelopes))
        return decoded

    async def _commit(self, decoded: list[Decoded]) -> int:
        """Apply decoded messages and their offsets in one transaction; returns how many
        messages advanced the offsets.

        Messages at or below the stored offsets are skipped, so a redelivered batch applies
        once. Raises `_Resync` when the stored offsets went back behind what this runner
        committed (a rebuild swapped in its tables): the caller re-seeks, nothing is skipped.
        """
        assert self._conn is not None
        conn = self._conn
        with PROJECTION_BATCH.labels(self.projection.name).time():
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id(self.tracking_name))
                stored = await stored_offsets(conn, self.tracking_name, lock=True)
                records: list[Record] = []
                last: dict[tuple[str, int], int] = {}
                applied = 0
                for tp, messages, envelopes in decoded:
                    topic, partition = tp.topic, tp.partition
                    floor = stored.get((topic, partition), -1)
                    if floor < self.positions.get((topic, partition), -1):
                        raise _Resync(f"{topic}:{partition} stored offset went back to {floor}")
                    start = 0  # messages are in offset order: skip the already applied prefix
                    while start < len(messages) and messages[start].offset <= floor:
                        start += 1
                    if start == len(messages):
                        continue
                    applied += len(messages) - start
                    last[(topic, partition)] = messages[-1].offset
                    with no_cyclic_gc():
                        records += [Record(topic, partition, m.offset, e) for m, e in
                                    zip(messages[start:], envelopes[start:], strict=True)
                                    if e is not None]
                if not last:
                    return 0
                if records:
                    await self.projection.apply(conn, self.schema, records)
                await conn.executemany(
                    "INSERT INTO bess_meta.projection_offsets"
                    '(projection, topic, partition, "offset") '
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (projection, topic, partition) "
                    'DO UPDATE SET "offset"=EXCLUDED."offset", updated_at=now()',
                    [(self.tracking_name, t, p, o) for (t, p), o in last.items()])
        self.positions.update(last)
        EVENTS.labels(f"projection.{self.projection.name}", "all").inc(len(records))
        return applied

    async def _fetch(self) -> list[Decoded] | None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_batch)
        return await self._decode(batch) if batch else None

    async def _resyncing(self, commit: Awaitable[int]) -> int | None:
        """Await a commit; None when the offsets moved under us and the runner re-seeked."""
        try:
            return await commit
        except (_Resync, asyncpg.exceptions.InvalidCachedStatementError,
                asyncpg.exceptions.UndefinedTableError,
                asyncpg.exceptions.InvalidSchemaNameError) as exc:
            # the schema was swapped under us by a rebuild: reload offsets and re-seek
            log.info("projection schema changed, resyncing", projection=self.projection.name,
                     error=str(exc))
            await self._seek_to_stored()
            return None

    async def step(self) -> int:
        """Fetch and apply one batch; returns how many messages advanced the offsets."""
        decoded = await self._fetch()
        if decoded is None:
            return 0
        return await self._resyncing(self._commit(decoded)) or 0

    async def _pump(self, until: dict[TopicPartition, int] | None) -> int:
        """Fetch and apply batches until `stop()` or, with `until`, until the consumer
        positions reach those offsets; returns messages applied.

        Pipelined: batch k+1 is fetched and decoded while batch k commits (a task), so the
        database's work overlaps ours. Commits stay one at a time and in order; a resync drops
        the batch fetched meanwhile (the re-seek fetches it again)."""
        assert self._consumer is not None
        total, polls = 0, 0
        commit: asyncio.Task[int] | None = None
        try:
            while not self._stopping.is_set():
                fetched = None
                if until is None or not await self._at(until):
                    fetched = await self._fetch()
                elif commit is None:
                    break
                if commit is not None:
                    applied = await self._resyncing(commit)
                    commit = None
                    if applied is None:
                        fetched = None
                    total += applied or 0
                if fetched is not None:
                    commit = asyncio.create_task(self._commit(fetched))
                polls += 1
                if until is None and polls % 25 == 0:
                    PROJECTION_LAG.labels(self.projection.name).set(await self.lag())
            if commit is not None:  # stopped: let the last batch commit
                total += await self._resyncing(commit) or 0
                commit = None
        finally:
            if commit is not None:  # the fetch failed: the commit in flight still ends cleanly
                with contextlib.suppress(Exception):
                    await commit
        return total

    async def _at(self, until: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, end in until.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def lag(self) -> int:
        """Messages in the topics not yet applied (against the last stable offsets)."""
        assert self._consumer is not None
        parts = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(parts)
        positions = [await self._consumer.position(tp) for tp in parts]
        return sum(max(0, ends[tp] - pos) for tp, pos in zip(parts, positions, strict=True))

    async def run(self) -> None:
        """Run until `stop()`; reconnects are the supervisor's job (the process exits)."""
        await self.open()
        # modules, schemas and clients live as long as the process: out of the cyclic GC,
        # whose full collections would otherwise walk them every few batches
        gc.collect()
        gc.freeze()
        log.info("projection started", projection=self.projection.name, schema=self.schema)
        try:
            await self._pump(None)
        finally:
            await self.close()

    async def run_to_end(self) -> int:
        """Open, apply everything up to the current end of the topics, close."""
        await self.open()
        try:
            return await self.catch_up()
        finally:
            await self.close()

    async def catch_up(self) -> int:
        """Apply everything up to the end offsets seen at call time; returns messages applied."""
        assert self._consumer is not None
        parts = list(self._consumer.assignment())
        return await self._pump(await self._consumer.end_offsets(parts))


async def rebuild(projection: Projection, dsn: str, bootstrap: str) -> int:
    """Replay `projection` from offset 0 into a fresh schema and swap it in atomically.

    Returns the number of messages replayed. Live runners keep going: they take the same
    advisory lock per batch and resync to the swapped offsets.
    """
    shadow_schema = f"{projection.schema}__rebuild"
    shadow_name = f"{projection.name}__rebuild"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(META_SQL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{shadow_schema}" CASCADE')
        await conn.execute("DELETE FROM bess_meta.projection_offsets WHERE projection=$1",
                           shadow_name)
        await conn.execute("DELETE FROM bess_meta.schema_migrations WHERE projection=$1",
                           shadow_name)
        runner = ProjectionRunner(projection, dsn, bootstrap, schema=shadow_schema,
                                  tracking_name=shadow_name)
        replayed = await runner.run_to_end()
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id(projection.name))
            await conn.execute(f'DROP SCHEMA IF EXISTS "{projection.schema}" CASCADE')
            await conn.execute(f'ALTER SCHEMA "{shadow_schema}" RENAME TO "{projection.schema}"')
            for table in ("projection_offsets", "schema_migrations"):
                await conn.execute(f"DELETE FROM bess_meta.{table} WHERE projection=$1",
                                   projection.name)
                await conn.execute(
                    f"UPDATE bess_meta.{table} SET projection=$1 WHERE projection=$2",
                    projection.name, shadow_name)
        log.info("projection rebuilt", projection=projection.name, replayed=replayed)
        return replayed
    finally:
        await conn.close()
