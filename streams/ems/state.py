"""The dispatch processor's state per site, and the pure steps it takes on it.

Kept apart from the Kafka wiring (`streams.ems.dispatch`) so that it is tested without a
broker: `SiteState` round-trips through the changelog as JSON; `price_curve` turns the latest
price forecast into the optimiser's price vector; `soc_deviates` decides the SoC trigger;
`order_for` turns a plan step into an intraday order.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np

from schemas.ems import ForecastPublished
from schemas.trading import Side, SubmitOrder, TimeInForce

NAMESPACE = uuid.UUID("0c0f3c7e-2b8e-4f39-8a55-8f4d3e7c1a21")
ML_HISTORY = 500
"""Labelled samples kept for the ML strategy selector."""


@dataclass
class SiteState:
    """What the dispatch processor knows of one site. Times are ISO 8601 UTC strings."""

    site: str
    clock: str | None = None                 # event time reached (forecasts, clock ticks)
    soc_pct: float | None = None
    soc_time: str | None = None
    mode: str | None = None                  # manual | auto; None = as configured
    strategy: str | None = None              # active strategy; None = not selected yet
    announced_mode: str | None = None        # mode of the last StrategySelected published
    price_start: str | None = None
    price_step_s: int = 900
    price_p50: list[float] = field(default_factory=list)
    price_model: str | None = None
    last_plan_at: str | None = None
    plan_start: str | None = None
    plan_step_s: int = 900
    plan_soc: list[float] = field(default_factory=list)
    orders: dict[str, float] = field(default_factory=dict)   # delivery start -> MWh (+ sell)
    ml_x: list[list[float]] = field(default_factory=list)
    ml_y: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteState:
        return cls(**data)

    def advance(self, at: datetime) -> None:
        """Move the site's event time forward (never back)."""
        if self.clock is None or at > datetime.fromisoformat(self.clock):
            self.clock = at.isoformat()

    def take_price(self, forecast: ForecastPublished) -> None:
        """Keep the P50 curve of a price forecast."""
        self.price_start = forecast.points[0].start.isoformat() if forecast.points else None
        self.price_step_s = forecast.step_s
        self.price_p50 = [p.p50 for p in forecast.points]
        self.price_model = forecast.model

    def remember(self, features: np.ndarray, best: str) -> None:
        """Add a labelled sample for the ML selector (the last `ML_HISTORY` are kept)."""
        self.ml_x.append([float(v) for v in features])
        self.ml_y.append(best)
        del self.ml_x[:-ML_HISTORY], self.ml_y[:-ML_HISTORY]


def price_curve(state: SiteState, origin: datetime, steps: int, step_s: int) -> np.ndarray | None:
    """Prices (EUR/MWh) for `steps` steps of `step_s` from `origin`, from the latest forecast.

    Steps past the forecast's end repeat the value one day earlier (daily periodicity); steps
    before its start take its first value. None when there is no forecast yet.
    """
    if not state.price_p50 or state.price_start is None:
        return None
    start = datetime.fromisoformat(state.price_start)
    n = len(state.price_p50)
    out = np.empty(steps)
    for i in range(steps):
        t = origin + timedelta(seconds=i * step_s)
        j = int((t - start).total_seconds() // state.price_step_s)
        while j >= n:
            j -= 86400 // state.price_step_s
        out[i] = state.price_p50[max(j, 0)]
    return out


def planned_soc(state: SiteState, at: datetime) -> float | None:
    """SoC (%) the last plan expects at `at`, or None when `at` is outside the plan."""
    if state.plan_start is None or not state.plan_soc:
        return None
    offset = (at - datetime.fromisoformat(state.plan_start)).total_seconds()
    index = int(offset // state.plan_step_s)
    if offset < 0 or index >= len(state.plan_soc):
        return None
    return state.plan_soc[index]


def soc_deviates(state: SiteState, soc_pct: float, at: datetime, limit_pct: float,
                 min_gap_s: float = 60.0) -> bool:
    """True when a reading at `at` deviates from the plan by more than `limit_pct` points.

    Readings outside the plan's horizon (another clock, as with a replay running faster than
    real time) never trigger; neither do readings within `min_gap_s` of the last plan.
    """
    expected = planned_soc(state, at)
    if expected is None or abs(soc_pct - expected) <= limit_pct:
        return False
    if state.last_plan_at is not None:
        since = (at - datetime.fromisoformat(state.last_plan_at)).total_seconds()
        if since < min_gap_s:
            return False
    return True


def order_for(*, site: str, account: str, market: str, delivery_start: datetime, step_s: int,
              planned_mwh: float, ordered_mwh: float, price_eur_mwh: float,
              tolerance_eur_mwh: float, now: datetime, lot_mwh: Decimal = Decimal("0.1"),
              price_tick: Decimal = Decimal("0.01")) -> SubmitOrder | None:
    """The intraday order that brings the site's orders for one delivery period to its plan.

    `planned_mwh` is the plan's energy for the period (positive = discharge = SELL), the
    difference to `ordered_mwh` is ordered in whole lots, as a limit order at the plan's price
    minus (SELL) or plus (BUY) `tolerance_eur_mwh`. None when the difference is below one lot.
    The order id is a UUID5 of site, period and the cumulative amount, so the same decision made
    twice produces the same order.
    """
    delta = Decimal(repr(planned_mwh - ordered_mwh))
    lots = (abs(delta) / lot_mwh).to_integral_value(rounding=ROUND_HALF_EVEN)
    if lots == 0:
        return None
    side = Side.SELL if delta > 0 else Side.BUY
    limit = Decimal(repr(price_eur_mwh - tolerance_eur_mwh if side is Side.SELL
                         else price_eur_mwh + tolerance_eur_mwh))
    limit = limit.quantize(price_tick, rounding=ROUND_HALF_EVEN)
    quantity = lots * lot_mwh
    order_id = uuid.uuid5(NAMESPACE, f"{site}|{market}|{delivery_start.isoformat()}|"
                                     f"{ordered_mwh!r}|{side}|{quantity}")
    return SubmitOrder(
        order_id=order_id, client_order_id=f"ems-{delivery_start:%Y%m%dT%H%M}", account=account,
        site=site, market=market, side=side, quantity_mwh=quantity, limit_price_eur_mwh=limit,
        time_in_force=TimeInForce.GTC, delivery_start=delivery_start,
        delivery_end=delivery_start + timedelta(seconds=step_s), submitted_at=now)
