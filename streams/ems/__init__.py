"""EMS processors: price forecasting (keyed by market) and dispatch (keyed by site)."""
