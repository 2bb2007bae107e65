"""Demo liquidity: a market maker quoting intraday periods around the replayed real price."""
