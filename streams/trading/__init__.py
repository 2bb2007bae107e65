"""Trading processors: pre-trade risk (keyed by site) and the matching engine (keyed by market)."""
