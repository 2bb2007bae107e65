"""EMS: plans, forecasts, strategies, optimisation history, analytics and sites (seed 003 API list,
seed 004 2.5 multi-site).

Reads the ``ems.*`` projections; strategy changes are published as `SetStrategy` commands on
``ems.commands.v1`` (202), applied by the dispatch processor. "The last N days" are counted back
from the newest plan of the site (event time), so a replay of past prices has analytics too.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import PoolDep, ProducerDep, SettingsDep
from api.routes.telemetry import state as telemetry_state
from domain.dispatch import SiteConfig, aggregate, load_ems_config
from domain.dispatch import SiteState as AggregateSite
from infra.kafka_io import publish
from schemas.catalog import EMS_COMMANDS
from schemas.ems import STRATEGIES, SetStrategy, Strategy
from schemas.envelope import new_envelope

router = APIRouter(prefix="/api", tags=["ems"])

DESCRIPTIONS = {
    "arbitrage": "Buy energy at low prices, sell at high prices (day-ahead/intraday spread).",
    "peak_shaving": "Lower the peak of the grid import (demand charge), then energy cost.",
    "self_consumption": "Store PV surplus and use it on site instead of importing.",
    "load_balancing": "Smooth the grid exchange: fewer and smaller ramps.",
}


@cache
def _sites(path: Path) -> tuple[SiteConfig, ...]:
    return tuple(load_ems_config(yaml.safe_load(path.read_text()) or {}))


def sites_of(settings: Any) -> tuple[SiteConfig, ...]:
    return _sites(Path(settings.ems_file))


def site_of(settings: Any, site: str | None) -> SiteConfig:
    sites = sites_of(settings)
    if not sites:
        raise HTTPException(404, "no EMS site is configured (ems.yaml)")
    if site is None:
        return sites[0]
    for s in sites:
        if s.site_id == site:
            return s
    raise HTTPException(404, f"unknown site {site!r}; known: {[s.site_id for s in sites]}")


def _loads(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


class StrategyRequest(BaseModel):
    site: str | None = Field(default=None, description="Default: the first site of ems.yaml.")
    strategy: Strategy


class AutoRequest(BaseModel):
    site: str | None = Field(default=None, description="Default: the first site of ems.yaml.")


@router.get("/plan")
async def plan(pool: PoolDep, settings: SettingsDep, site: str | None = None) -> dict[str, Any]:
    """The site's current dispatch plan (24 h: power, SoC, prices per step)."""
    cfg = site_of(settings, site)
    row = await pool.fetchrow("SELECT * FROM ems.plans WHERE site = $1 ORDER BY planned_at DESC "
                              "LIMIT 1", cfg.site_id)
    if row is None:
        raise HTTPException(404, f"no plan for {cfg.site_id} yet")
    out = dict(row)
    out["steps"] = _loads(out["steps"])
    return out


@router.get("/forecast")
async def forecast(pool: PoolDep, settings: SettingsDep,
                   site: str | None = None) -> dict[str, Any]:
    """The site's newest price, load and PV forecasts (P10/P50/P90 per step)."""
    cfg = site_of(settings, site)
    rows = await pool.fetch("SELECT * FROM ems.forecasts WHERE site = $1", cfg.site_id)
    out: dict[str, Any] = {"site": cfg.site_id}
    for row in rows:
        item = dict(row)
        item["points"] = _loads(item["points"])
        out[row["quantity"]] = item
    return out


@router.get("/strategies")
async def strategies(pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    """The four strategies and each site's active strategy and selection mode."""
    rows = {r["site"]: dict(r) for r in await pool.fetch("SELECT * FROM ems.strategy")}
    sites = []
    for cfg in sites_of(settings):
        row = rows.get(cfg.site_id)
        sites.append({
            "site": cfg.site_id,
            "strategy": row["strategy"] if row else None,
            "mode": row["mode"] if row else cfg.selection_mode,
            "selected_at": row["selected_at"] if row else None,
            "reason": row["reason"] if row else None,
            "selector": row["selector"] if row else None,
            "scores": _loads(row["scores"]) if row else {},
            "switch_threshold": cfg.switch_threshold,
        })
    return {"strategies": [{"name": s, "description": DESCRIPTIONS[s]} for s in STRATEGIES],
            "sites": sites}


async def _set(producer: Any, command: SetStrategy) -> dict[str, Any]:
    envelope = new_envelope(command, occurred_at=command.requested_at, source="api")
    await (await publish(producer, EMS_COMMANDS.name, envelope))
    return {"status": "accepted", "command_id": str(envelope.event_id), "site": command.site,
            "mode": command.mode, "strategy": command.strategy}


@router.post("/strategy", status_code=202)
async def set_strategy(body: StrategyRequest, producer: ProducerDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """Use this strategy for the site (manual mode); published as `SetStrategy`."""
    cfg = site_of(settings, body.site)
    return await _set(producer, SetStrategy(site=cfg.site_id, mode="manual",
                                            strategy=body.strategy,
                                            requested_at=datetime.now(UTC)))


@router.post("/strategy/auto", status_code=202)
async def set_auto(producer: ProducerDep, settings: SettingsDep,
                   body: AutoRequest | None = None) -> dict[str, Any]:
    """Let the EMS choose the strategy (scores with switch threshold, or the ML selector)."""
    cfg = site_of(settings, body.site if body else None)
    return await _set(producer, SetStrategy(site=cfg.site_id, mode="auto",
                                            requested_at=datetime.now(UTC)))


async def _newest_plan(pool: Any, site: str) -> datetime | None:
    return await pool.fetchval("SELECT max(planned_at) FROM ems.plans WHERE site = $1", site)


@router.get("/history/optimization")
async def optimization_history(pool: PoolDep, settings: SettingsDep,
                               days: float = Query(1, gt=0, le=366), site: str | None = None,
                               limit: int = Query(500, ge=1, le=10000)) -> dict[str, Any]:
    """Optimisations of the last `days` days: time, strategy, profit, solver, status; and the
    failed ones with their reason."""
    cfg = site_of(settings, site)
    newest = await _newest_plan(pool, cfg.site_id)
    if newest is None:
        return {"site": cfg.site_id, "optimizations": []}
    rows = await pool.fetch("""
        SELECT plan_id, planned_at, trigger, strategy, selection_mode, solver, status,
               solve_time_s, expected_profit_eur, objective_eur, degradation_cost_eur,
               soc_initial_pct
        FROM ems.plans WHERE site = $1 AND planned_at > $2
        ORDER BY planned_at DESC LIMIT $3""", cfg.site_id, newest - timedelta(days=days), limit)
    failures = await pool.fetch("""
        SELECT failed_at, trigger, strategy, reason, detail FROM ems.failures
        WHERE site = $1 AND failed_at > $2 ORDER BY failed_at DESC LIMIT $3""",
        cfg.site_id, newest - timedelta(days=days), limit)
    return {"site": cfg.site_id, "optimizations": [dict(r) for r in rows],
            "failures": [dict(r) for r in failures]}


async def _daily(pool: Any, cfg: SiteConfig, days: int) -> list[dict[str, Any]]:
    """Per day (UTC) of the dispatched schedule: market value, throughput, cycles, mean SoC."""
    newest = await _newest_plan(pool, cfg.site_id)
    if newest is None:
        return []
    since = (newest - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await pool.fetch("""
        SELECT date_trunc('day', step_start AT TIME ZONE 'UTC') AS day,
               sum(power_kw * step_s / 3600.0 / 1000.0 * price_eur_mwh) AS profit_eur,
               sum(discharge_kw * step_s / 3600.0) AS discharged_kwh,
               sum(charge_kw * step_s / 3600.0) AS charged_kwh,
               avg(soc_pct) AS mean_soc_pct, count(*) AS steps,
               mode() WITHIN GROUP (ORDER BY strategy) AS main_strategy
        FROM ems.schedule
        WHERE site = $1 AND step_start >= $2 AND step_start < $3
        GROUP BY 1 ORDER BY 1""", cfg.site_id, since, newest)
    capacity = cfg.battery.capacity_kwh
    return [{
        "day": r["day"].date().isoformat(),
        "profit_eur": round(r["profit_eur"], 2),
        "charged_kwh": r["charged_kwh"], "discharged_kwh": r["discharged_kwh"],
        "full_cycles": r["discharged_kwh"] / capacity if capacity else None,
        "mean_soc_pct": r["mean_soc_pct"], "steps": r["steps"],
        "main_strategy": r["main_strategy"],
    } for r in rows]


@router.get("/analytics/daily")
async def analytics_daily(pool: PoolDep, settings: SettingsDep,
                          days: int = Query(7, ge=1, le=366),
                          site: str | None = None) -> dict[str, Any]:
    """Per day of the dispatched schedule: profit (EUR), full-equivalent cycles, mean SoC."""
    cfg = site_of(settings, site)
    return {"site": cfg.site_id, "days": await _daily(pool, cfg, days)}


@router.get("/analytics/summary")
async def analytics_summary(pool: PoolDep, settings: SettingsDep,
                            days: int = Query(30, ge=1, le=366),
                            site: str | None = None) -> dict[str, Any]:
    """Totals over the last `days` days: profit, mean daily profit, cycles, mean SoC,
    strategy use and the current plan's expected profit."""
    cfg = site_of(settings, site)
    daily = await _daily(pool, cfg, days)
    plans = await pool.fetch("""
        SELECT strategy, count(*) AS n, avg(solve_time_s) AS mean_solve_s
        FROM ems.plans WHERE site = $1 AND planned_at > $2 GROUP BY strategy""",
        cfg.site_id, (await _newest_plan(pool, cfg.site_id) or datetime.now(UTC))
        - timedelta(days=days))
    current = await pool.fetchrow("""
        SELECT planned_at, strategy, expected_profit_eur FROM ems.plans WHERE site = $1
        ORDER BY planned_at DESC LIMIT 1""", cfg.site_id)
    total = sum(d["profit_eur"] for d in daily)
    return {
        "site": cfg.site_id, "days": len(daily),
        "total_profit_eur": round(total, 2),
        "mean_daily_profit_eur": round(total / len(daily), 2) if daily else None,
        "full_cycles": sum(d["full_cycles"] or 0 for d in daily),
        "mean_soc_pct": (sum(d["mean_soc_pct"] * d["steps"] for d in daily)
                         / sum(d["steps"] for d in daily)) if daily else None,
        "strategy_use": {r["strategy"]: r["n"] for r in plans},
        "mean_solve_time_s": (sum(r["mean_solve_s"] * r["n"] for r in plans)
                              / sum(r["n"] for r in plans)) if plans else None,
        "current_plan": dict(current) if current else None,
    }


def _site_public(cfg: SiteConfig) -> dict[str, Any]:
    b = cfg.battery
    return {
        "site": cfg.site_id, "name": cfg.name, "price_market": cfg.price_market,
        "trading_market": cfg.trading_market, "bidding_zone": cfg.bidding_zone,
        "latitude": cfg.latitude, "longitude": cfg.longitude, "pv_peak_kw": cfg.pv_peak_kw,
        "battery": {"capacity_kwh": b.capacity_kwh, "power_charge_max_kw": b.power_charge_max_kw,
                    "power_discharge_max_kw": b.power_discharge_max_kw,
                    "soc_min_pct": b.soc_min_pct, "soc_max_pct": b.soc_max_pct},
        "grid_import_max_kw": cfg.grid_import_max_kw,
        "grid_export_max_kw": cfg.grid_export_max_kw,
        "selection_mode": cfg.selection_mode, "auto_trading": cfg.auto_trading,
    }


@router.get("/sites")
async def sites(settings: SettingsDep) -> dict[str, Any]:
    """The sites of ems.yaml with their battery and grid connection."""
    return {"sites": [_site_public(s) for s in sites_of(settings)]}


@router.get("/sites/aggregated")
async def sites_aggregated(pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    """All sites together (seed 004 2.5.1): total battery, PV, load power (kW), stored energy
    and the capacity-weighted mean SoC, from each site's telemetry state. Sites without a SoC
    reading are listed under `without_telemetry` and left out of the totals."""
    cfgs = sites_of(settings)
    states, missing = [], []
    strategies = {r["site"]: r["strategy"] for r in await pool.fetch(
        "SELECT site, strategy FROM ems.strategy")}
    for cfg in cfgs:
        st = await telemetry_state(pool, settings, cfg.site_id)
        if st.get("soc_pct") is None:
            missing.append(cfg.site_id)
            continue
        states.append(AggregateSite(
            site_id=cfg.site_id, capacity_kwh=cfg.battery.capacity_kwh, soc_pct=st["soc_pct"],
            power_kw=(st.get("active_power_mw") or 0.0) * 1000.0,
            pv_kw=(st.get("pv_power_mw") or 0.0) * 1000.0,
            load_kw=(st.get("load_power_mw") or 0.0) * 1000.0,
            strategy=strategies.get(cfg.site_id)))
    view = aggregate(states)
    out = asdict(view)
    out["sites"] = [asdict(s) for s in view.sites]
    out["without_telemetry"] = missing
    out["power_charge_max_kw"] = sum(c.battery.power_charge_max_kw for c in cfgs)
    out["power_discharge_max_kw"] = sum(c.battery.power_discharge_max_kw for c in cfgs)
    return out


@router.get("/sites/{site_id}/state")
async def site_state(site_id: str, pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    """One site: telemetry state, active strategy and the plan's current step."""
    cfg = site_of(settings, site_id)
    st = await telemetry_state(pool, settings, cfg.site_id)
    strategy = await pool.fetchrow("SELECT strategy, mode, selected_at FROM ems.strategy "
                                   "WHERE site = $1", cfg.site_id)
    current = await pool.fetchrow("""
        SELECT plan_id, planned_at, strategy, expected_profit_eur, steps->0 AS step
        FROM ems.plans WHERE site = $1 ORDER BY planned_at DESC LIMIT 1""", cfg.site_id)
    plan_now = None
    if current is not None:
        plan_now = dict(current)
        plan_now["step"] = _loads(plan_now["step"])
    return {"site": _site_public(cfg), "telemetry": st,
            "strategy": dict(strategy) if strategy else None, "plan": plan_now}
