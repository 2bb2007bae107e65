"""Quote ladders for the demo market maker: bids and asks around a reference price.

Given a reference price P (EUR/MWh), a relative half-spread s, a level step d (EUR/MWh) and n
levels, the ladder is bids ``round_down(P * (1 - s)) - k*d`` and asks
``round_up(P * (1 + s)) + k*d`` for k = 0..n-1, each of `size_mwh`, prices on the market's
price tick. For negative prices the spread is taken on |P| so that bids stay below asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from schemas.trading import Side


@dataclass(frozen=True)
class QuoteConfig:
    """`half_spread`: fraction of |P| (0.02 = 2 %); `min_half_spread_eur`: floor in EUR/MWh;
    `level_step_eur`: EUR/MWh between levels; `size_mwh`: quantity per level."""

    half_spread: Decimal = Decimal("0.02")
    min_half_spread_eur: Decimal = Decimal("0.50")
    level_step_eur: Decimal = Decimal("0.50")
    levels: int = 3
    size_mwh: Decimal = Decimal("1.0")
    price_tick: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        if self.levels < 1 or self.size_mwh <= 0 or self.price_tick <= 0:
            raise ValueError("levels, size_mwh and price_tick must be positive")
        if self.half_spread < 0 or self.min_half_spread_eur < 0 or self.level_step_eur < 0:
            raise ValueError("spreads must not be negative")


@dataclass(frozen=True)
class Quote:
    side: Side
    price_eur_mwh: Decimal
    quantity_mwh: Decimal


def ladder(reference_eur_mwh: float | Decimal, config: QuoteConfig) -> list[Quote]:
    """Bids (best first) then asks (best first) around the reference price."""
    ref = Decimal(str(reference_eur_mwh))
    half = max(abs(ref) * config.half_spread, config.min_half_spread_eur)
    best_bid = ((ref - half) / config.price_tick).to_integral_value(ROUND_FLOOR) * config.price_tick
    best_ask = (((ref + half) / config.price_tick).to_integral_value(ROUND_CEILING)
                * config.price_tick)
    quotes = [Quote(Side.BUY, best_bid - k * config.level_step_eur, config.size_mwh)
              for k in range(config.levels)]
    quotes += [Quote(Side.SELL, best_ask + k * config.level_step_eur, config.size_mwh)
               for k in range(config.levels)]
    return quotes
