"""Telemetry read models (schema ``telemetry``).

- ``readings``: the history, one row per reading event (event id primary key: an exact repeat
  is stored once). Out-of-order readings are here too.
- ``latest``: per (site, device, quantity) the newest value by device time; a reading older
  than the stored one (or equally old) does not replace it.
- ``devices``: per device its source, readings projected, newest device time, and online state
  from `DeviceOffline` / `DeviceOnline`.
- ``setpoints``: the latest setpoint per site; ``setpoint_deliveries``: the gateways'
  delivery reports per setpoint event.

Bulk writes go through COPY into temp tables, as in ``projections/market.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from projections.framework import Projection, Record
from schemas.catalog import DEVICE_STATUS, SETPOINTS, TELEMETRY_READINGS
from schemas.telemetry import (
    QUANTITIES,
    DeviceOffline,
    DeviceOnline,
    SetpointDelivered,
    SetpointIssued,
    TelemetryReceived,
)

_Q_COLS = ",\n    ".join(f"{q} double precision" for q in QUANTITIES)

MIGRATION_1 = f"""
CREATE TABLE {{schema}}.readings (
    event_id uuid PRIMARY KEY,
    site text NOT NULL,
    device_id text NOT NULL,
    source text NOT NULL,
    device_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    {_Q_COLS}
);
CREATE INDEX ON {{schema}}.readings (site, device_time);
CREATE INDEX ON {{schema}}.readings (site, device_id, device_time);
CREATE TABLE {{schema}}.latest (
    site text NOT NULL,
    device_id text NOT NULL,
    quantity text NOT NULL,
    value double precision NOT NULL,
    device_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    source text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (site, device_id, quantity)
);
CREATE TABLE {{schema}}.devices (
    site text NOT NULL,
    device_id text NOT NULL,
    source text NOT NULL,
    readings bigint NOT NULL DEFAULT 0,
    last_device_time timestamptz,
    online boolean,
    status_at timestamptz,
    offline_since timestamptz,
    status_reason text,
    PRIMARY KEY (site, device_id)
);
CREATE TABLE {{schema}}.setpoints (
    site text PRIMARY KEY,
    active_power_mw double precision NOT NULL,
    issued_at timestamptz NOT NULL,
    issued_by text NOT NULL,
    event_id uuid NOT NULL
);
CREATE TABLE {{schema}}.setpoint_deliveries (
    setpoint_event_id uuid NOT NULL,
    delivered_to text NOT NULL,
    site text NOT NULL,
    ok boolean NOT NULL,
    delivered_at timestamptz NOT NULL,
    error text,
    PRIMARY KEY (setpoint_event_id, delivered_to)
);
"""

READING_COLUMNS = ("event_id", "site", "device_id", "source", "device_time", "received_at",
                   *QUANTITIES, "seq")
_QCSV = ", ".join(QUANTITIES)
_UNPIVOT = ", ".join(f"('{q}', {q})" for q in QUANTITIES)


class TelemetryProjection(Projection):
    name = "telemetry"
    schema = "telemetry"
    topics = (TELEMETRY_READINGS.name, DEVICE_STATUS.name, SETPOINTS.name)
    migrations = (MIGRATION_1,)

    async def prepare(self, conn: asyncpg.Connection, schema: str) -> None:
        await conn.execute(f"""
            CREATE TEMP TABLE IF NOT EXISTS tmp_readings
                (LIKE {schema}.readings INCLUDING DEFAULTS, seq bigint) ON COMMIT DELETE ROWS;
        """)

    async def apply(self, conn: asyncpg.Connection, schema: str, records: Sequence[Record]) -> None:
        readings = []
        for seq, rec in enumerate(records):
            p = rec.envelope.payload
            if isinstance(p, TelemetryReceived):
                readings.append((rec.envelope.event_id, p.site, p.device_id, p.source,
                                 p.device_time, p.received_at,
                                 *(getattr(p, q) for q in QUANTITIES), seq))
        if readings:
            await self._readings(conn, schema, readings)
        for rec in records:  # status and setpoints are rare: row by row, in log order
            p = rec.envelope.payload
            if isinstance(p, DeviceOffline | DeviceOnline):
                online = isinstance(p, DeviceOnline)
                await conn.execute(f"""
                    INSERT INTO {schema}.devices AS d
                        (site, device_id, source, online, status_at, offline_since, status_reason)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (site, device_id) DO UPDATE SET online = EXCLUDED.online,
                        status_at = EXCLUDED.status_at, offline_since = EXCLUDED.offline_since,
                        status_reason = EXCLUDED.status_reason
                    WHERE d.status_at IS NULL OR d.status_at <= EXCLUDED.status_at""",
                    p.site, p.device_id, p.source, online, p.detected_at,
                    None if online else p.detected_at,
                    None if online else p.reason)  # type: ignore[union-attr]
            elif isinstance(p, SetpointIssued):
                await conn.execute(f"""
                    INSERT INTO {schema}.setpoints AS s
                        (site, active_power_mw, issued_at, issued_by, event_id)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (site) DO UPDATE SET active_power_mw = EXCLUDED.active_power_mw,
                        issued_at = EXCLUDED.issued_at, issued_by = EXCLUDED.issued_by,
                        event_id = EXCLUDED.event_id
                    WHERE s.issued_at <= EXCLUDED.issued_at""",
                    p.site, p.active_power_mw, p.issued_at, p.issued_by, rec.envelope.event_id)
            elif isinstance(p, SetpointDelivered):
                await conn.execute(f"""
                    INSERT INTO {schema}.setpoint_deliveries
                        (setpoint_event_id, delivered_to, site, ok, delivered_at, error)
                    VALUES ($1::uuid, $2, $3, $4, $5, $6)
                    ON CONFLICT (setpoint_event_id, delivered_to) DO UPDATE SET ok = EXCLUDED.ok,
                        delivered_at = EXCLUDED.delivered_at, error = EXCLUDED.error""",
                    p.setpoint_event_id, f"{p.via}:{p.device_id}", p.site, p.ok, p.delivered_at,
                    p.error)

    async def _readings(self, conn: asyncpg.Connection, schema: str, rows: list[tuple]) -> None:
        await conn.copy_records_to_table("tmp_readings", records=rows, columns=READING_COLUMNS)
        await conn.execute(f"""
            WITH ins AS (
                INSERT INTO {schema}.readings
                SELECT DISTINCT ON (event_id) event_id, site, device_id, source, device_time,
                       received_at, {_QCSV}
                FROM tmp_readings ORDER BY event_id, seq
                ON CONFLICT (event_id) DO NOTHING
                RETURNING site, device_id, source, device_time)
            INSERT INTO {schema}.devices AS d (site, device_id, source, readings, last_device_time)
            SELECT site, device_id, max(source), count(*), max(device_time) FROM ins
            GROUP BY site, device_id
            ON CONFLICT (site, device_id) DO UPDATE SET
                readings = d.readings + EXCLUDED.readings, source = EXCLUDED.source,
                last_device_time = greatest(d.last_device_time, EXCLUDED.last_device_time);

            INSERT INTO {schema}.latest AS l
                (site, device_id, quantity, value, device_time, received_at, source, event_id)
            SELECT DISTINCT ON (site, device_id, quantity)
                   site, device_id, quantity, value, device_time, received_at, source, event_id
            FROM tmp_readings CROSS JOIN LATERAL (VALUES {_UNPIVOT}) AS v(quantity, value)
            WHERE value IS NOT NULL
            ORDER BY site, device_id, quantity, device_time DESC, seq
            ON CONFLICT (site, device_id, quantity) DO UPDATE SET
                value = EXCLUDED.value, device_time = EXCLUDED.device_time,
                received_at = EXCLUDED.received_at, source = EXCLUDED.source,
                event_id = EXCLUDED.event_id
            WHERE l.device_time < EXCLUDED.device_time;
        """)
