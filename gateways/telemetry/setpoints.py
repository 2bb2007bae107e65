"""The setpoint consumer of a gateway: `SetpointIssued` from ``control.setpoints.v1`` for the
sites this gateway serves and its route, handed to a writer; each delivery is reported as a
`SetpointDelivered`. Consumer group = ``gateway.<protocol>``; offsets are committed after the
write, so a setpoint is written at least once (writing the same setpoint twice is harmless)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from aiokafka import AIOKafkaConsumer

from infra.logging import get_logger
from schemas.catalog import SETPOINTS
from schemas.envelope import Envelope, MessageDecodeError, decode
from schemas.telemetry import SetpointIssued

log = get_logger("gateways.setpoints")

Writer = Callable[[Envelope[SetpointIssued]], Awaitable[None]]


async def consume_setpoints(bootstrap: str, protocol: str, default_via: str,
                            sites: Callable[[], Collection[str]], write: Writer,
                            ready: asyncio.Event | None = None) -> None:
    """Run until cancelled: hand every new setpoint for `sites()` routed to `protocol` to
    `write`. Starts at the end of the topic (older setpoints are history)."""
    consumer = AIOKafkaConsumer(SETPOINTS.name, bootstrap_servers=bootstrap,
                                group_id=f"gateway.{protocol}", enable_auto_commit=False,
                                auto_offset_reset="latest", isolation_level="read_committed")
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)  # pin "latest" before announcing readiness
        if ready is not None:
            ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for msg in messages:
                    try:
                        envelope = decode(msg.value)
                    except MessageDecodeError as exc:
                        log.warning("undecodable setpoint", offset=msg.offset, reason=exc.reason)
                        continue
                    sp = envelope.payload
                    if not isinstance(sp, SetpointIssued):
                        continue
                    if (sp.via or default_via) != protocol or sp.site not in sites():
                        continue
                    await write(envelope)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
