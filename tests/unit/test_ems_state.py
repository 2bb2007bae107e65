"""The dispatch processor's pure steps (`streams.ems.state`): state round trip, the price curve
from a forecast, the SoC-deviation trigger and the intraday order for a plan step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from schemas.ems import ForecastPoint, ForecastPublished
from schemas.trading import Side
from streams.ems.state import SiteState, order_for, planned_soc, price_curve, soc_deviates

T0 = datetime(2023, 3, 6, 0, 0, tzinfo=UTC)


def price_forecast(values: list[float], start: datetime = T0, step_s: int = 900
                   ) -> ForecastPublished:
    points = tuple(ForecastPoint(start=start + timedelta(seconds=i * step_s), p10=v - 1, p50=v,
                                 p90=v + 1) for i, v in enumerate(values))
    return ForecastPublished(site="s", market="M", quantity="price", unit="EUR/MWh",
                             model="ensemble", issued_at=start, step_s=step_s, points=points)


def test_state_round_trips_through_its_dict() -> None:
    state = SiteState(site="s", soc_pct=42.5, orders={"2023-03-06T00:15:00+00:00": -0.5})
    state.take_price(price_forecast([1.0, 2.0]))
    state.remember(np.array([1.0, 2.0]), "arbitrage")
    assert SiteState.from_dict(state.to_dict()) == state


def test_clock_only_moves_forward() -> None:
    state = SiteState(site="s")
    state.advance(T0 + timedelta(hours=2))
    state.advance(T0)
    assert state.clock == (T0 + timedelta(hours=2)).isoformat()


def test_ml_history_is_bounded() -> None:
    state = SiteState(site="s")
    for i in range(600):
        state.remember(np.array([float(i)]), "peak_shaving")
    assert len(state.ml_x) == len(state.ml_y) == 500
    assert state.ml_x[0] == [100.0]


def test_price_curve_follows_the_forecast_and_repeats_the_day_after_its_end() -> None:
    state = SiteState(site="s")
    day = [float(i) for i in range(96)]
    state.take_price(price_forecast(day))
    curve = price_curve(state, T0 + timedelta(hours=6), 96, 900)
    assert curve is not None
    assert list(curve[:72]) == day[24:]
    assert list(curve[72:]) == day[:24]  # beyond the forecast: one day earlier


def test_price_curve_without_forecast_is_none() -> None:
    assert price_curve(SiteState(site="s"), T0, 4, 900) is None


def test_price_curve_from_an_hourly_forecast_holds_each_hour() -> None:
    state = SiteState(site="s")
    state.take_price(price_forecast([10.0, 20.0] * 12, step_s=3600))
    curve = price_curve(state, T0, 8, 900)
    assert curve is not None and list(curve) == [10.0] * 4 + [20.0] * 4


def _planned(state: SiteState) -> SiteState:
    state.plan_start, state.plan_step_s = T0.isoformat(), 900
    state.plan_soc = [50.0, 55.0, 60.0, 65.0]
    state.last_plan_at = T0.isoformat()
    return state


def test_planned_soc_is_that_of_the_step_containing_the_time() -> None:
    state = _planned(SiteState(site="s"))
    assert planned_soc(state, T0 + timedelta(minutes=20)) == 55.0
    assert planned_soc(state, T0 - timedelta(seconds=1)) is None
    assert planned_soc(state, T0 + timedelta(hours=1)) is None


def test_soc_deviation_triggers_just_outside_the_limit() -> None:
    state = _planned(SiteState(site="s"))
    at = T0 + timedelta(minutes=20)  # plan expects 55 %
    assert not soc_deviates(state, 60.0, at, limit_pct=5.0)
    assert soc_deviates(state, 60.01, at, limit_pct=5.0)
    assert soc_deviates(state, 49.9, at, limit_pct=5.0)


def test_soc_deviation_ignores_readings_outside_the_plan_and_right_after_it() -> None:
    state = _planned(SiteState(site="s"))
    assert not soc_deviates(state, 99.0, T0 + timedelta(days=3), limit_pct=5.0)
    state.last_plan_at = (T0 + timedelta(minutes=19, seconds=30)).isoformat()
    assert not soc_deviates(state, 99.0, T0 + timedelta(minutes=20), limit_pct=5.0)


def _order(planned: float, ordered: float = 0.0):
    return order_for(site="s", account="s", market="EPEX_AT_INTRADAY_15MIN",
                     delivery_start=T0, step_s=900, planned_mwh=planned, ordered_mwh=ordered,
                     price_eur_mwh=87.123, tolerance_eur_mwh=5.0, now=T0 - timedelta(hours=1))


def test_discharge_is_sold_below_the_plan_price_in_whole_lots() -> None:
    order = _order(0.44)
    assert order is not None
    assert order.side is Side.SELL
    assert order.quantity_mwh == Decimal("0.4")
    assert order.limit_price_eur_mwh == Decimal("82.12")
    assert order.delivery_end - order.delivery_start == timedelta(minutes=15)


def test_charge_is_bought_above_the_plan_price() -> None:
    order = _order(-0.5)
    assert order is not None
    assert order.side is Side.BUY and order.quantity_mwh == Decimal("0.5")
    assert order.limit_price_eur_mwh == Decimal("92.12")


def test_only_the_difference_to_what_was_ordered_is_ordered() -> None:
    order = _order(-0.5, ordered=-0.3)
    assert order is not None and order.side is Side.BUY
    assert order.quantity_mwh == Decimal("0.2")
    reverse = _order(-0.5, ordered=-0.8)
    assert reverse is not None and reverse.side is Side.SELL
    assert reverse.quantity_mwh == Decimal("0.3")


@pytest.mark.parametrize("planned", [0.0, 0.04, -0.049])
def test_less_than_half_a_lot_orders_nothing(planned: float) -> None:
    assert _order(planned) is None


def test_the_same_decision_gives_the_same_order_id() -> None:
    a, b = _order(0.5), _order(0.5)
    assert a is not None and b is not None and a.order_id == b.order_id
    c = _order(0.5, ordered=0.1)
    assert c is not None and c.order_id != a.order_id
