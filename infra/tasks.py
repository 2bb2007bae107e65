"""Running a set of asyncio tasks as one unit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any


async def run_until_first_error(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Wait until one task raises (re-raised here) or all end; then cancel and reap the rest."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
