"""Stream processors: thin faust-streaming agents wiring topics to the pure domain."""
