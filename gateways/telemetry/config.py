"""Gateway configuration at run time: a gateway follows ``telemetry.gateway-config.v1``
(compacted, one partition) for its key (``modbus``, ``mqtt``). On start it reads the topic to
its end and hands the latest command (if any) to `apply` before it connects to anything; then
every new command as it arrives. A tombstone (``DELETE /api/<gw>/config``) is handed over as
None: back to the gateway's own configuration. The API publishes the commands
(``POST /api/<gw>/config``); the gateway answers each with a `GatewayConfigApplied` under
``<gw>.applied``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.logging import get_logger
from schemas.catalog import GATEWAY_CONFIG
from schemas.envelope import Envelope, MessageDecodeError, decode

log = get_logger("gateways.config")

Apply = Callable[[Envelope[Any] | None], Awaitable[None]]


async def follow_config(bootstrap: str, key: str, apply: Apply,
                        loaded: asyncio.Event | None = None) -> None:
    """Run until cancelled: `apply` the latest command for `key`, then each new one (None for
    a tombstone); `loaded` is set once the commands that existed at start are applied."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    tp = TopicPartition(GATEWAY_CONFIG.name, 0)
    wanted = key.encode()
    try:
        if GATEWAY_CONFIG.name not in await consumer.topics():
            log.warning("no configuration topic: the environment's configuration only "
                        "(`bess topics create` adds it)", topic=GATEWAY_CONFIG.name)
            if loaded is not None:
                loaded.set()
            return
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest = None
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                latest = next((r for r in reversed(records) if r.key == wanted), latest)
        if latest is not None:
            await _apply(apply, latest.value, latest.offset)
        if loaded is not None:
            loaded.set()
        while True:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                for r in records:
                    if r.key == wanted:
                        await _apply(apply, r.value, r.offset)
    finally:
        await consumer.stop()


async def _apply(apply: Apply, value: bytes | None, offset: int) -> None:
    if value is None:
        await apply(None)
        return
    try:
        envelope = decode(value)
    except MessageDecodeError as exc:
        log.warning("undecodable gateway config", offset=offset, reason=exc.reason)
        return
    await apply(envelope)
