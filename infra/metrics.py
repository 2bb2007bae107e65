"""Prometheus metrics of the whole system (names as the predecessor's G_*/C_* gauges, seed 000).

When ``PROMETHEUS_MULTIPROC_DIR`` is set (as `bess up` does) the processes of one machine share
their samples, so the API's /metrics shows the gauges the workers set.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MARK = Gauge("bess_market_mark_eur_mwh", "Mark price per market (G_MARK), EUR/MWh", ["market"],
             multiprocess_mode="mostrecent")
EMA = Gauge("bess_market_ema_eur_mwh", "EMA of the mark price per market (G_EMA), EUR/MWh",
            ["market"], multiprocess_mode="mostrecent")
VWAP = Gauge("bess_market_vwap_eur_mwh", "VWAP per market (G_VWAP), EUR/MWh", ["market"],
             multiprocess_mode="mostrecent")
PRICE_EVENTS = Counter("bess_market_price_events", "Price ticks processed per market (C_EVENTS)",
                       ["market"])
EVENTS = Counter("bess_events_processed", "Messages processed", ["processor", "topic"])
DEAD_LETTERS = Counter("bess_dead_letters", "Messages sent to a dead-letter topic",
                       ["processor", "topic"])
PROJECTION_LAG = Gauge("bess_projection_lag_events", "Events not yet projected",
                       ["projection"], multiprocess_mode="mostrecent")
PROJECTION_BATCH = Histogram("bess_projection_batch_seconds", "Projection batch write time",
                             ["projection"])
EXPOSURE_BUY = Gauge("bess_trading_exposure_buy_eur", "Open BUY orders: remaining MWh x limit "
                     "(G_EXPO_E), EUR", ["site", "market"], multiprocess_mode="mostrecent")
EXPOSURE_SELL = Gauge("bess_trading_exposure_sell_eur", "Open SELL orders: remaining MWh x limit "
                      "(G_EXPO_N), EUR", ["site", "market"], multiprocess_mode="mostrecent")
PNL_REALISED = Gauge("bess_trading_pnl_realised_eur", "Realised PnL (G_PNL_REAL), EUR",
                     ["site", "market"], multiprocess_mode="mostrecent")
POSITION = Gauge("bess_trading_position_mwh", "Net position (bought - sold), MWh",
                 ["site", "market"], multiprocess_mode="mostrecent")
TRADES = Counter("bess_trading_trades", "Trades executed", ["market"])
ORDERS = Counter("bess_trading_orders", "Order outcomes", ["stage", "outcome"])
PUBLISHED = Counter("bess_gateway_published", "Events published by gateways", ["gateway", "topic"])


def render() -> tuple[bytes, str]:
    """The exposition text of this process (or all processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

# EMS (streams/ems): the plan of each site, as the predecessor's dashboard KPIs (seed 003)
EMS_PLANS = Counter("bess_ems_plans", "Dispatch plans made", ["site", "strategy", "trigger"])
EMS_SOLVE = Histogram("bess_ems_solve_seconds", "Optimisation time per plan (all strategies "
                      "solved in auto mode)", ["site"],
                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EMS_PROFIT = Gauge("bess_ems_expected_profit_eur", "Expected profit of the current plan, EUR",
                   ["site"], multiprocess_mode="mostrecent")
EMS_SETPOINT = Gauge("bess_ems_setpoint_mw", "Current active power setpoint, MW (+ discharge)",
                     ["site"], multiprocess_mode="mostrecent")
EMS_FORECASTS = Counter("bess_ems_forecasts", "Forecasts published", ["market", "model"])
