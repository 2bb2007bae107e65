"""EMS read models (schema ``ems``): plans, the dispatched schedule, forecasts, strategies.

- ``plans``: one row per `DispatchPlanned` (the optimisation history of seed 003), steps as
  JSON; the newest per site is the current plan.
- ``schedule``: per (site, step start) the step of the newest plan covering it. Steps before
  the newest plan's start are what was dispatched; analytics (profit, cycles, mean SoC) are
  computed over them.
- ``forecasts``: the newest forecast per (site, quantity) with its points;
  ``forecast_log``: every forecast's model, issue time and training window (no points).
- ``strategy``: the active strategy and mode per site; ``strategy_log``: every selection.
- ``failures``: every `DispatchFailed` (the reason a site could not be planned).

Rows carry the event id; replays are made harmless by the framework's offsets and by
"newer wins" upserts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import orjson

from projections.framework import Projection, Record
from schemas.catalog import FORECASTS, PLANS
from schemas.ems import DispatchFailed, DispatchPlanned, ForecastPublished, StrategySelected

MIGRATION_1 = """
CREATE TABLE {schema}.plans (
    plan_id text PRIMARY KEY,
    site text NOT NULL,
    planned_at timestamptz NOT NULL,
    trigger text NOT NULL,
    strategy text NOT NULL,
    selection_mode text NOT NULL,
    solver text NOT NULL,
    status text NOT NULL,
    solve_time_s double precision NOT NULL,
    step_s integer NOT NULL,
    soc_initial_pct double precision NOT NULL,
    expected_profit_eur double precision NOT NULL,
    objective_eur double precision NOT NULL,
    degradation_cost_eur double precision NOT NULL,
    plan_start timestamptz NOT NULL,
    steps jsonb NOT NULL,
    event_id uuid NOT NULL
);
CREATE INDEX ON {schema}.plans (site, planned_at DESC);
CREATE TABLE {schema}.schedule (
    site text NOT NULL,
    step_start timestamptz NOT NULL,
    step_s integer NOT NULL,
    power_kw double precision NOT NULL,
    charge_kw double precision NOT NULL,
    discharge_kw double precision NOT NULL,
    soc_pct double precision NOT NULL,
    price_eur_mwh double precision NOT NULL,
    grid_kw double precision NOT NULL,
    strategy text NOT NULL,
    plan_id text NOT NULL,
    planned_at timestamptz NOT NULL,
    PRIMARY KEY (site, step_start)
);
CREATE TABLE {schema}.forecasts (
    site text NOT NULL,
    quantity text NOT NULL,
    market text,
    unit text NOT NULL,
    model text NOT NULL,
    issued_at timestamptz NOT NULL,
    step_s integer NOT NULL,
    training_start timestamptz,
    training_end timestamptz,
    points jsonb NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (site, quantity)
);
CREATE TABLE {schema}.forecast_log (
    event_id uuid PRIMARY KEY,
    site text NOT NULL,
    quantity text NOT NULL,
    model text NOT NULL,
    issued_at timestamptz NOT NULL,
    training_start timestamptz,
    training_end timestamptz,
    points integer NOT NULL
);
CREATE TABLE {schema}.strategy (
    site text PRIMARY KEY,
    strategy text NOT NULL,
    mode text NOT NULL,
    selected_at timestamptz NOT NULL,
    reason text NOT NULL,
    selector text NOT NULL,
    scores jsonb NOT NULL
);
CREATE TABLE {schema}.strategy_log (
    event_id uuid PRIMARY KEY,
    site text NOT NULL,
    strategy text NOT NULL,
    mode text NOT NULL,
    selected_at timestamptz NOT NULL,
    reason text NOT NULL,
    selector text NOT NULL,
    scores jsonb NOT NULL
);
"""


MIGRATION_2 = """
CREATE TABLE {schema}.failures (
    event_id uuid PRIMARY KEY,
    site text NOT NULL,
    failed_at timestamptz NOT NULL,
    trigger text NOT NULL,
    strategy text,
    reason text NOT NULL,
    detail text NOT NULL
);
CREATE INDEX ON {schema}.failures (site, failed_at DESC);
"""


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class EmsProjection(Projection):
    """Forecasts, plans and strategy selections into ``ems.*``."""

    name = "ems"
    schema = "ems"
    topics = (FORECASTS.name, PLANS.name)
    migrations = (MIGRATION_1, MIGRATION_2)

    async def apply(self, conn: asyncpg.Connection, schema: str, records: Sequence[Record]) -> None:
        for rec in records:
            p = rec.envelope.payload
            if isinstance(p, DispatchPlanned):
                await self._plan(conn, schema, p, rec)
            elif isinstance(p, ForecastPublished):
                await self._forecast(conn, schema, p, rec)
            elif isinstance(p, StrategySelected):
                await self._strategy(conn, schema, p, rec)
            elif isinstance(p, DispatchFailed):
                await conn.execute(f"""
                    INSERT INTO {schema}.failures (event_id, site, failed_at, trigger, strategy,
                        reason, detail)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING""",
                    rec.envelope.event_id, p.site, p.failed_at, p.trigger, p.strategy,
                    p.reason, p.detail)

    async def _plan(self, conn: asyncpg.Connection, schema: str, p: DispatchPlanned,
                    rec: Record) -> None:
        steps = [s.model_dump(mode="json") for s in p.steps]
        start = p.steps[0].start if p.steps else p.planned_at
        await conn.execute(f"""
            INSERT INTO {schema}.plans (plan_id, site, planned_at, trigger, strategy,
                selection_mode, solver, status, solve_time_s, step_s, soc_initial_pct,
                expected_profit_eur, objective_eur, degradation_cost_eur, plan_start, steps,
                event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
            ON CONFLICT (plan_id) DO NOTHING""",
            p.plan_id, p.site, p.planned_at, p.trigger, p.strategy, p.selection_mode, p.solver,
            p.status, p.solve_time_s, p.step_s, p.soc_initial_pct, p.expected_profit_eur,
            p.objective_eur, p.degradation_cost_eur, start, _json(steps), rec.envelope.event_id)
        rows = [(p.site, s.start, p.step_s, s.power_kw, s.charge_kw, s.discharge_kw, s.soc_pct,
                 s.price_eur_mwh, s.grid_kw, p.strategy, p.plan_id, p.planned_at)
                for s in p.steps]
        await conn.executemany(f"""
            INSERT INTO {schema}.schedule AS s (site, step_start, step_s, power_kw, charge_kw,
                discharge_kw, soc_pct, price_eur_mwh, grid_kw, strategy, plan_id, planned_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (site, step_start) DO UPDATE SET step_s = EXCLUDED.step_s,
                power_kw = EXCLUDED.power_kw, charge_kw = EXCLUDED.charge_kw,
                discharge_kw = EXCLUDED.discharge_kw, soc_pct = EXCLUDED.soc_pct,
                price_eur_mwh = EXCLUDED.price_eur_mwh, grid_kw = EXCLUDED.grid_kw,
                strategy = EXCLUDED.strategy, plan_id = EXCLUDED.plan_id,
                planned_at = EXCLUDED.planned_at
            WHERE s.planned_at <= EXCLUDED.planned_at""", rows)
        # steps of an older plan beyond the newer plan's horizon are not the schedule any more
        if p.steps:
            end = p.steps[-1].start + timedelta(seconds=p.step_s)
            await conn.execute(f"""
                DELETE FROM {schema}.schedule WHERE site = $1 AND step_start >= $2
                    AND planned_at < $3""", p.site, end, p.planned_at)

    async def _forecast(self, conn: asyncpg.Connection, schema: str, p: ForecastPublished,
                        rec: Record) -> None:
        points = [pt.model_dump(mode="json") for pt in p.points]
        await conn.execute(f"""
            INSERT INTO {schema}.forecasts AS f (site, quantity, market, unit, model, issued_at,
                step_s, training_start, training_end, points, event_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (site, quantity) DO UPDATE SET market = EXCLUDED.market,
                unit = EXCLUDED.unit, model = EXCLUDED.model, issued_at = EXCLUDED.issued_at,
                step_s = EXCLUDED.step_s, training_start = EXCLUDED.training_start,
                training_end = EXCLUDED.training_end, points = EXCLUDED.points,
                event_id = EXCLUDED.event_id
            WHERE f.issued_at <= EXCLUDED.issued_at""",
            p.site, p.quantity, p.market, p.unit, p.model, p.issued_at, p.step_s,
            p.training_start, p.training_end, _json(points), rec.envelope.event_id)
        await conn.execute(f"""
            INSERT INTO {schema}.forecast_log (event_id, site, quantity, model, issued_at,
                training_start, training_end, points)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING""",
            rec.envelope.event_id, p.site, p.quantity, p.model, p.issued_at, p.training_start,
            p.training_end, len(p.points))

    async def _strategy(self, conn: asyncpg.Connection, schema: str, p: StrategySelected,
                        rec: Record) -> None:
        args = (p.site, p.strategy, p.mode, p.selected_at, p.reason, p.selector, _json(p.scores))
        await conn.execute(f"""
            INSERT INTO {schema}.strategy AS s (site, strategy, mode, selected_at, reason,
                selector, scores)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (site) DO UPDATE SET strategy = EXCLUDED.strategy,
                mode = EXCLUDED.mode, selected_at = EXCLUDED.selected_at,
                reason = EXCLUDED.reason, selector = EXCLUDED.selector, scores = EXCLUDED.scores
            WHERE s.selected_at <= EXCLUDED.selected_at""", *args)
        await conn.execute(f"""
            INSERT INTO {schema}.strategy_log (event_id, site, strategy, mode, selected_at,
                reason, selector, scores)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING""",
            rec.envelope.event_id, *args)
