"""Forecasting: day-ahead price, site load and PV forecasts with quantiles. Pure: no I/O, no clock.

`forecast` runs the history-based models (seasonal naive, profile, LEAR, GBM, Prophet; MLP on
request) and their ensemble; `clear_sky_pv` forecasts PV from the sun's position; `backtest`
scores the models rolling-origin on real data.
"""

from domain.forecasting.backtest import BacktestResult, backtest, day_origins
from domain.forecasting.metrics import Scores, score
from domain.forecasting.pipeline import best, ensemble_weights, forecast
from domain.forecasting.pv import clear_sky_pv, kasten_czeplak
from domain.forecasting.types import MODELS, QUANTITIES, UNITS, Forecast, ForecastOptions

__all__ = [
    "MODELS",
    "QUANTITIES",
    "UNITS",
    "BacktestResult",
    "Forecast",
    "ForecastOptions",
    "Scores",
    "backtest",
    "best",
    "clear_sky_pv",
    "day_origins",
    "ensemble_weights",
    "forecast",
    "kasten_czeplak",
    "score",
]
