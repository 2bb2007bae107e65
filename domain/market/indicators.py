"""Mark price, EMA and VWAP per market, folded over price ticks and trades.

The predecessor computed these as G_MARK, G_EMA and G_VWAP (seed 000, "Marktdaten-Abruf").
Definitions used here:

- mark price: the latest observed price of the market, a trade price or a tick price,
  whichever is newer in event time;
- EMA: ``ema_k = alpha * mark_k + (1 - alpha) * ema_{k-1}`` with ``alpha = 2 / (span + 1)``
  (the usual span parametrisation, as pandas ``ewm(span=N, adjust=False)``), seeded with the
  first mark price; updated on every mark price update;
- VWAP over a window of `window_s` seconds of event time ending at the latest input:
  ``sum(price_i * w_i) / sum(w_i)`` (sums with ``math.fsum``). When the window holds trades the
  weights are the traded MWh (basis ``"trades"``); otherwise ticks, weighted by their published
  volume in MWh, or by the length of their delivery period in hours (the energy of a flat 1 MW
  profile) when they carry none (basis ``"ticks"``).

Inputs that are not newer than the last input of their kind (a repeated or late tick for a
delivery period already seen, a trade older than the last) change nothing and produce no update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.market import MarketIndicatorsUpdated, PriceTickReceived


@dataclass(frozen=True)
class IndicatorConfig:
    """`ema_span`: N >= 1 observations; `vwap_window_s`: seconds of event time."""

    ema_span: int = 24
    vwap_window_s: int = 24 * 3600

    def __post_init__(self) -> None:
        if self.ema_span < 1:
            raise ValueError("ema_span must be >= 1")
        if self.vwap_window_s < 1:
            raise ValueError("vwap_window_s must be >= 1")

    @property
    def alpha(self) -> float:
        return 2.0 / (self.ema_span + 1)


Sample = tuple[float, float, float]
"""(event time as epoch seconds, price EUR/MWh, weight)."""


@dataclass(frozen=True)
class IndicatorState:
    """Indicator state of one market; `to_dict`/`from_dict` give a JSON-safe form."""

    market: str
    mark: float | None = None
    ema: float | None = None
    last_tick_s: float | None = None
    last_trade_s: float | None = None
    ticks: tuple[Sample, ...] = ()
    trades: tuple[Sample, ...] = ()
    tick_count: int = 0
    trade_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "market": self.market, "mark": self.mark, "ema": self.ema,
            "last_tick_s": self.last_tick_s, "last_trade_s": self.last_trade_s,
            "ticks": [list(s) for s in self.ticks], "trades": [list(s) for s in self.trades],
            "tick_count": self.tick_count, "trade_count": self.trade_count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndicatorState:
        return cls(
            market=data["market"], mark=data["mark"], ema=data["ema"],
            last_tick_s=data["last_tick_s"], last_trade_s=data["last_trade_s"],
            ticks=tuple((float(a), float(b), float(c)) for a, b, c in data["ticks"]),
            trades=tuple((float(a), float(b), float(c)) for a, b, c in data["trades"]),
            tick_count=int(data["tick_count"]), trade_count=int(data["trade_count"]),
        )


def _window(samples: tuple[Sample, ...], now_s: float, window_s: int) -> tuple[Sample, ...]:
    """The samples newer than ``now_s - window_s``. Samples are in time order (apply_tick and
    apply_trade only ever append newer ones), so the window is a suffix: drop the head."""
    cutoff = now_s - window_s
    drop = 0
    for sample in samples:
        if sample[0] > cutoff:
            break
        drop += 1
    return samples[drop:] if drop else samples


def vwap(samples: tuple[Sample, ...]) -> float:
    """Weighted mean price of `samples`. Raises ValueError when the weights sum to zero."""
    total = math.fsum([s[2] for s in samples])
    if total <= 0:
        raise ValueError("VWAP of zero total weight")
    return math.fsum([s[1] * s[2] for s in samples]) / total


def _ema(state: IndicatorState, price: float, config: IndicatorConfig) -> float:
    return price if state.ema is None else config.alpha * price + (1 - config.alpha) * state.ema


def _snapshot(
    state: IndicatorState, at: datetime, config: IndicatorConfig
) -> MarketIndicatorsUpdated:
    assert state.mark is not None and state.ema is not None
    basis, samples = ("trades", state.trades) if state.trades else ("ticks", state.ticks)
    return MarketIndicatorsUpdated(
        market=state.market, as_of=at, mark_price_eur_mwh=state.mark, ema_eur_mwh=state.ema,
        ema_span=config.ema_span, vwap_eur_mwh=vwap(samples), vwap_basis=basis,
        vwap_window_s=config.vwap_window_s, tick_count=state.tick_count,
        trade_count=state.trade_count,
    )


def apply_tick(
    state: IndicatorState, tick: PriceTickReceived, config: IndicatorConfig
) -> tuple[IndicatorState, MarketIndicatorsUpdated | None]:
    """Fold one price tick into `state`; returns the new state and the update (None if stale).

    Raises ValueError when the tick belongs to another market.
    """
    if tick.market != state.market:
        raise ValueError(f"tick for {tick.market} applied to {state.market}")
    start = tick.delivery_start
    at_s = start.timestamp()
    if state.last_tick_s is not None and at_s <= state.last_tick_s:
        return state, None
    hours = (tick.delivery_end - start).total_seconds() / 3600.0
    weight = tick.volume_mwh if tick.volume_mwh else hours
    now_s = max(at_s, state.last_trade_s or at_s)
    price = tick.price_eur_mwh
    state = IndicatorState(
        market=state.market,
        mark=price,
        ema=_ema(state, price, config),
        last_tick_s=at_s,
        last_trade_s=state.last_trade_s,
        ticks=_window((*state.ticks, (at_s, price, weight)), now_s, config.vwap_window_s),
        trades=_window(state.trades, now_s, config.vwap_window_s) if state.trades else (),
        tick_count=state.tick_count + 1,
        trade_count=state.trade_count,
    )
    return state, _snapshot(state, start, config)


def apply_trade(
    state: IndicatorState, *, price_eur_mwh: float, quantity_mwh: float, executed_at: datetime,
    config: IndicatorConfig,
) -> tuple[IndicatorState, MarketIndicatorsUpdated | None]:
    """Fold one executed trade (price EUR/MWh, quantity MWh > 0) into `state`.

    Raises ValueError for a non-positive quantity or a naive `executed_at`.
    """
    if quantity_mwh <= 0:
        raise ValueError("trade quantity must be positive")
    if executed_at.tzinfo is None:
        raise ValueError("executed_at must be timezone-aware")
    at_s = executed_at.timestamp()
    if state.last_trade_s is not None and at_s < state.last_trade_s:
        return state, None
    state = IndicatorState(
        market=state.market,
        mark=price_eur_mwh,
        ema=_ema(state, price_eur_mwh, config),
        last_tick_s=state.last_tick_s,
        last_trade_s=at_s,
        ticks=_window(state.ticks, at_s, config.vwap_window_s),
        trades=_window(
            (*state.trades, (at_s, price_eur_mwh, quantity_mwh)), at_s, config.vwap_window_s
        ),
        tick_count=state.tick_count,
        trade_count=state.trade_count + 1,
    )
    return state, _snapshot(state, executed_at.astimezone(UTC), config)
