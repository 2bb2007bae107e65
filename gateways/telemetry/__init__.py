"""What the telemetry gateways share: validation, dedup and publishing of readings, device
status events and dead letters, and the setpoint consumer."""
