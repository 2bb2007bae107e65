"""Time as an event: the clock that drives schedules in event time.

Processors never read the wall clock; a forecast "every hour" or a plan "every 15 minutes"
happens when a `ClockTicked` with a later `at` arrives. The market-data replay publishes the
market clock (the delivery start of the replayed ticks, so schedules follow the replay speed);
live deployments publish the wall clock every ``BESS_CLOCK_INTERVAL_S`` seconds. Every tick is
written once to each partition of ``system.clock.v1``, so every partition of a co-partitioned
processor sees it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Payload, UtcDatetime
from schemas.envelope import register


@register
class ClockTicked(Payload):
    """Event time reached `at` (UTC). Key: ``clock``; one copy per partition."""

    at: UtcDatetime
    clock: Literal["wall", "replay"] = Field(description="wall: real time; replay: market "
                                                         "time of a replayed price file.")

    def partition_key(self) -> str:
        return "clock"
