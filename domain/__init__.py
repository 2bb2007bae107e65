"""Pure domain logic: no I/O, no asyncio, no Kafka. Time is passed in, never read."""
