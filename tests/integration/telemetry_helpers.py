"""Helpers of the telemetry integration tests: gateways run in-process as tasks against the
real Kafka, Postgres, Mosquitto and pymodbus peers of the session."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from projections.framework import ProjectionRunner
from projections.telemetry import TelemetryProjection


@contextlib.asynccontextmanager
async def running(make: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
                  timeout_s: float = 30) -> AsyncIterator[asyncio.Task[None]]:
    """Run `make(ready)` as a task until the block ends; waits until it set `ready`."""
    ready = asyncio.Event()
    task = asyncio.create_task(make(ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=timeout_s,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready.is_set(), "component did not become ready"
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Any], timeout_s: float = 20,
                     every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(every_s)


async def project_telemetry(dsn: str, bootstrap: str) -> int:
    return await ProjectionRunner(TelemetryProjection(), dsn, bootstrap).run_to_end()
