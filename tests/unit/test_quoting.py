"""Market-maker quote ladder and delivery periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from domain.market.quoting import QuoteConfig, ladder
from schemas.trading import Side


def test_ladder_around_reference() -> None:
    quotes = ladder(100.0, QuoteConfig(half_spread=D("0.02"), level_step_eur=D("0.5"), levels=2))
    bids = [q.price_eur_mwh for q in quotes if q.side is Side.BUY]
    asks = [q.price_eur_mwh for q in quotes if q.side is Side.SELL]
    assert bids == [D("98.00"), D("97.50")]
    assert asks == [D("102.00"), D("102.50")]


@pytest.mark.parametrize("ref", [-252.6, -0.01, 0.0, 0.004, 37.123, 4000.0])
def test_bids_stay_below_asks_on_the_tick(ref: float) -> None:
    quotes = ladder(ref, QuoteConfig())
    best_bid = max(q.price_eur_mwh for q in quotes if q.side is Side.BUY)
    best_ask = min(q.price_eur_mwh for q in quotes if q.side is Side.SELL)
    assert best_bid < D(str(ref)) < best_ask or best_bid < best_ask
    assert all(q.price_eur_mwh % D("0.01") == 0 for q in quotes)


def test_market_maker_quotes_open_periods_and_cancels_old_quotes() -> None:
    from gateways.market_maker.service import MarketMaker
    from infra.settings import Settings

    mm = MarketMaker(Settings(), periods=4)
    now = datetime(2026, 11, 21, 10, 7, 30, tzinfo=UTC)
    first = mm.commands(100.0, now)
    starts = sorted({c.delivery_start for c in first})
    assert [s.strftime("%H:%M") for s in starts] == ["10:15", "10:30", "10:45", "11:00"]
    assert len(first) == 4 * 6
    second = mm.commands(101.0, now)
    cancels = [c for c in second if type(c).__name__ == "CancelOrder"]
    assert {c.order_id for c in cancels} == {c.order_id for c in first}
    late = datetime(2026, 11, 21, 10, 11, 0, tzinfo=UTC)  # 10:15 closes at 10:10
    assert min(mm.delivery_periods(late)).strftime("%H:%M") == "10:30"
