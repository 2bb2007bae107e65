"""Indicators processor: price ticks in, mark price/EMA/VWAP events and gauges out."""
