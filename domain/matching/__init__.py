"""Matching: market specs (tick, step, price rule, gate closure), the integer price-time
priority order book and the event-sourced matching engine. Pure: no I/O, no clock."""

from domain.matching.book import BUY, SELL, OrderBook
from domain.matching.engine import MatchingEngine
from domain.matching.orders import BookDepth, DepthLevel, OpenOrder
from domain.matching.spec import DEFAULT_SPECS, MarketSpec, PriceRule, spec_for

__all__ = [
    "BUY", "DEFAULT_SPECS", "SELL", "BookDepth", "DepthLevel", "MarketSpec",
    "MatchingEngine", "OpenOrder", "OrderBook", "PriceRule", "spec_for",
]
