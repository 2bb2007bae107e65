"""All projections by name (`bess projector NAME`, `bess projections rebuild NAME`)."""

from __future__ import annotations

from projections.ems import EmsProjection
from projections.framework import Projection
from projections.market import MarketProjection
from projections.telemetry import TelemetryProjection
from projections.trading import TradingProjection


def projections() -> dict[str, Projection]:
    return {p.name: p for p in (MarketProjection(), TelemetryProjection(), TradingProjection(),
                                EmsProjection())}
