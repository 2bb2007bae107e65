"""Telemetry: unit normalisation, validation, ordering and staleness of readings, multi-sensor
aggregation, the simulated battery's physics and Modbus register maps. Pure: no I/O, no clock."""
