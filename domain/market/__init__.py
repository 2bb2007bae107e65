"""Market area: price indicators (mark price, EMA, VWAP)."""
