"""Domain: mark price, EMA and VWAP folded over ticks and trades."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.market.indicators import IndicatorConfig, IndicatorState, apply_tick, apply_trade
from schemas.market import PriceTickReceived

T0 = datetime(2023, 1, 1, tzinfo=UTC)


def tick(i: int, price: float, minutes: int = 60, volume: float | None = None,
         market: str = "M") -> PriceTickReceived:
    start = T0 + timedelta(minutes=minutes * i)
    return PriceTickReceived(market=market, bidding_zone="AT", delivery_start=start,
                             delivery_end=start + timedelta(minutes=minutes),
                             resolution="PT60M" if minutes == 60 else "PT15M",
                             price_eur_mwh=price, volume_mwh=volume, data_source="test")


def fold(prices: list[float], config: IndicatorConfig):
    state, updates = IndicatorState(market="M"), []
    for i, p in enumerate(prices):
        state, update = apply_tick(state, tick(i, p), config)
        updates.append(update)
    return state, updates


def test_ema_matches_span_definition() -> None:
    config = IndicatorConfig(ema_span=3, vwap_window_s=10 * 3600)  # alpha = 0.5
    _, updates = fold([10.0, 20.0, 40.0], config)
    assert [u.ema_eur_mwh for u in updates] == [10.0, 15.0, 27.5]
    assert [u.mark_price_eur_mwh for u in updates] == [10.0, 20.0, 40.0]


def test_vwap_over_ticks_uses_the_window_and_period_length() -> None:
    config = IndicatorConfig(ema_span=3, vwap_window_s=2 * 3600)
    _, updates = fold([10.0, 20.0, 40.0], config)
    assert [u.vwap_eur_mwh for u in updates] == [10.0, 15.0, 30.0]  # last two hours only
    assert {u.vwap_basis for u in updates} == {"ticks"}


def test_tick_volume_weights_vwap() -> None:
    config = IndicatorConfig()
    state = IndicatorState(market="M")
    state, _ = apply_tick(state, tick(0, 10.0, volume=3.0), config)
    state, update = apply_tick(state, tick(1, 20.0, volume=1.0), config)
    assert update is not None and update.vwap_eur_mwh == 12.5


def test_repeated_or_late_tick_changes_nothing() -> None:
    config = IndicatorConfig()
    state, _ = fold([10.0, 20.0], config)
    again, update = apply_tick(state, tick(1, 99.0), config)
    assert update is None and again == state
    late, update = apply_tick(state, tick(0, 99.0), config)
    assert update is None and late == state


def test_trades_take_over_vwap_and_mark() -> None:
    config = IndicatorConfig(ema_span=1)  # alpha = 1: EMA = mark
    state, _ = fold([10.0], config)
    state, update = apply_trade(state, price_eur_mwh=50.0, quantity_mwh=2.0,
                                executed_at=T0 + timedelta(minutes=10), config=config)
    state, update = apply_trade(state, price_eur_mwh=80.0, quantity_mwh=1.0,
                                executed_at=T0 + timedelta(minutes=20), config=config)
    assert update is not None
    assert update.vwap_basis == "trades" and update.vwap_eur_mwh == 60.0
    assert update.mark_price_eur_mwh == 80.0 and update.ema_eur_mwh == 80.0
    assert update.trade_count == 2 and update.tick_count == 1


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_trade_quantity_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        apply_trade(IndicatorState(market="M"), price_eur_mwh=1.0, quantity_mwh=bad,
                    executed_at=T0, config=IndicatorConfig())


def test_tick_of_another_market_is_rejected() -> None:
    with pytest.raises(ValueError, match="applied to"):
        apply_tick(IndicatorState(market="X"), tick(0, 1.0), IndicatorConfig())


def test_config_validates() -> None:
    with pytest.raises(ValueError):
        IndicatorConfig(ema_span=0)


prices_st = st.lists(st.floats(min_value=-500, max_value=4000, allow_nan=False), min_size=1,
                     max_size=80)


@given(prices_st, st.integers(1, 50), st.integers(1, 48))
def test_indicators_stay_within_price_range_and_state_round_trips(prices, span, window_h) -> None:
    config = IndicatorConfig(ema_span=span, vwap_window_s=window_h * 3600)
    state, updates = fold(prices, config)
    lo, hi = min(prices), max(prices)
    for u in updates:
        assert u is not None
        assert lo - 1e-9 <= u.ema_eur_mwh <= hi + 1e-9
        assert lo - 1e-9 <= u.vwap_eur_mwh <= hi + 1e-9
    assert IndicatorState.from_dict(state.to_dict()) == state
    last = updates[-1]
    recent = prices[-window_h:]
    assert last.vwap_eur_mwh == pytest.approx(math.fsum(recent) / len(recent), rel=1e-12, abs=1e-9)


# --- the fold against a literal transcription of the definitions (module docstring) ----------


def _reference(events: list[tuple[str, int, float, float | None]], config: IndicatorConfig):
    """Mark/EMA/VWAP/counters after each event, recomputed from scratch over all inputs seen."""
    ticks: list[tuple[float, float, float]] = []
    trades: list[tuple[float, float, float]] = []
    mark = ema = None
    last_tick = last_trade = None
    accepted = {"tick": 0, "trade": 0}
    out = []
    now = 0.0
    for kind, minute, price, size in events:
        at = (T0 + timedelta(minutes=minute)).timestamp()
        if kind == "tick":
            if last_tick is not None and at <= last_tick:
                out.append(None)
                continue
            last_tick = at
            ticks.append((at, price, size if size else 1.0))
            now = max(at, last_trade or at)
        else:
            if last_trade is not None and at < last_trade:
                out.append(None)
                continue
            last_trade = now = at
            trades.append((at, price, size))
        mark = price
        ema = price if ema is None else config.alpha * price + (1 - config.alpha) * ema
        window_trades = [s for s in trades if s[0] > now - config.vwap_window_s]
        window_ticks = [s for s in ticks if s[0] > now - config.vwap_window_s]
        samples = window_trades or window_ticks
        vwap = (math.fsum(p * w for _, p, w in samples) / math.fsum(w for _, _, w in samples))
        accepted[kind] += 1
        out.append((mark, ema, vwap, "trades" if window_trades else "ticks", accepted["tick"],
                    accepted["trade"]))
        # later inputs only see the windowed state
        trades[:] = window_trades
        ticks[:] = window_ticks
    return out


events_strategy = st.lists(
    st.tuples(st.sampled_from(["tick", "tick", "trade"]), st.integers(0, 600),
              st.floats(-500, 3000, allow_nan=False),
              st.none() | st.floats(0.1, 50, allow_nan=False)),
    max_size=40,
)


@given(events=events_strategy, span=st.integers(1, 50), window_m=st.integers(1, 600))
def test_fold_matches_the_definitions(events, span, window_m) -> None:
    config = IndicatorConfig(ema_span=span, vwap_window_s=window_m * 60)
    events = [(k, m, p, s if k == "tick" else (s or 1.0)) for k, m, p, s in events]
    state = IndicatorState(market="M")
    got = []
    for kind, minute, price, size in events:
        if kind == "tick":
            start = T0 + timedelta(minutes=minute)
            t = PriceTickReceived(market="M", bidding_zone="AT", delivery_start=start,
                                  delivery_end=start + timedelta(minutes=60), resolution="PT60M",
                                  price_eur_mwh=price, volume_mwh=size, data_source="test")
            state, update = apply_tick(state, t, config)
        else:
            state, update = apply_trade(state, price_eur_mwh=price, quantity_mwh=size,
                                        executed_at=T0 + timedelta(minutes=minute), config=config)
        got.append(None if update is None else (
            update.mark_price_eur_mwh, update.ema_eur_mwh, update.vwap_eur_mwh,
            update.vwap_basis, update.tick_count, update.trade_count))
        assert IndicatorState.from_dict(state.to_dict()) == state
    assert got == _reference(events, config)
