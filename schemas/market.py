"""Market data events: price ticks per delivery period and the indicators derived from them."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Payload, UtcDatetime
from schemas.envelope import register

Resolution = Literal["PT15M", "PT30M", "PT60M"]
"""ISO 8601 duration of a delivery period."""

RESOLUTION_SECONDS: dict[str, int] = {"PT15M": 900, "PT30M": 1800, "PT60M": 3600}


def day_ahead_market(bidding_zone: str, resolution: str, venue: str = "EPEX") -> str:
    """Market id of a day-ahead auction product, e.g. ``EPEX_AT_DAY_AHEAD_60MIN``.

    `bidding_zone` like ``AT`` or ``DE-LU`` (hyphen becomes underscore); `resolution` one of
    `Resolution`.
    """
    minutes = RESOLUTION_SECONDS[resolution] // 60
    return f"{venue}_{bidding_zone.replace('-', '_').upper()}_DAY_AHEAD_{minutes}MIN"


@register
class PriceTickReceived(Payload):
    """A market price for one delivery period was received (day-ahead result, index, quote).

    Key: `market`. Prices in EUR/MWh; `volume_mwh` when the source publishes one (it weights
    the VWAP), otherwise null.
    """

    market: str = Field(description="Market product id, e.g. EPEX_AT_DAY_AHEAD_60MIN.")
    bidding_zone: str = Field(description="Bidding zone, e.g. AT, DE-LU, BE.")
    delivery_start: UtcDatetime = Field(description="Start of the delivery period, UTC.")
    delivery_end: UtcDatetime = Field(description="End of the delivery period (exclusive), UTC.")
    resolution: Resolution = Field(description="Length of the delivery period (ISO 8601).")
    price_eur_mwh: float = Field(description="Price in EUR/MWh (may be negative).")
    volume_mwh: float | None = Field(default=None, ge=0, description="Traded volume, MWh.")
    data_source: str = Field(description="Where the price came from: file, entsoe, awattar, ...")

    @model_validator(mode="after")
    def _period_matches_resolution(self) -> PriceTickReceived:
        expected = timedelta(seconds=RESOLUTION_SECONDS[self.resolution])
        if self.delivery_end - self.delivery_start != expected:
            raise ValueError(
                f"delivery period {self.delivery_start.isoformat()}.."
                f"{self.delivery_end.isoformat()}"
                f" does not last {self.resolution}"
            )
        return self

    def partition_key(self) -> str:
        return self.market


@register
class MarketIndicatorsUpdated(Payload):
    """Mark price, EMA and VWAP of a market after a tick or trade (seed 000: G_MARK/G_EMA/G_VWAP).

    Key: `market`. All prices in EUR/MWh. `as_of` is the event time of the input that caused
    the update (the delivery start of a tick, the execution time of a trade).
    """

    market: str
    as_of: UtcDatetime
    mark_price_eur_mwh: float = Field(description="Latest price: last trade, else last tick.")
    ema_eur_mwh: float = Field(description="Exponential moving average of the mark price.")
    ema_span: int = Field(ge=1, description="EMA span N; alpha = 2 / (N + 1).")
    vwap_eur_mwh: float = Field(description="Volume-weighted average price over the window.")
    vwap_basis: Literal["trades", "ticks"] = Field(
        description="trades: weighted by traded MWh; ticks: by tick volume or period length."
    )
    vwap_window_s: int = Field(ge=1, description="VWAP window length in seconds of event time.")
    tick_count: int = Field(ge=0, description="Ticks seen for this market.")
    trade_count: int = Field(ge=0, description="Trades seen for this market.")

    def partition_key(self) -> str:
        return self.market
