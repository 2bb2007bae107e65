"""Market data gateways: ENTSO-E, aWATTar and price-file adapters producing PriceTickReceived."""
