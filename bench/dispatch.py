"""EMS optimisation benchmark: cvxpy re-solves (DPP) beside the same problem built in highspy.

``.venv/bin/python -m bench.dispatch [--days N] [--weeks N] [--sites N] [--quick]``

Input: the default site of ``policy/ems.yaml`` (4 MWh / 2 MW battery, 2.5 MW connection, import
fee, degradation cost) with the real data the project ships: AT day-ahead prices of 2023
(``data/at_hourly_2015_2023.csv``, each hour repeated over its four 15-min steps) and the
household profile (``data/household_residential4_hourly.csv``: load x ``load_scale``, PV scaled to
``pv_peak_power_kw``). Strategy: arbitrage (the problem with a market value). No services needed.

System: ``Dispatcher(site).plan("arbitrage", inputs)``, wall time of the whole call (parameter
values, cvxpy's parameter-to-matrix map, HiGHS, reading the solution, the Plan) once the problem is
built (the first call, timed separately as "build"). Reference: the same model built directly in
highspy with numpy (columns c, d, e, imp, exp, curt; SoC dynamics, grid balance, terminal rows;
simple limits as column bounds): the constraint matrix is made once per horizon, each solve fills
in costs, bounds and right-hand sides, passes the model to a fresh ``Highs`` (cvxpy does the same:
no warm start) and reads the solution. Both follow the same algorithm: the LP, and the MILP with a
charge/discharge binary only when the LP charges and discharges in one step. Each pair of solves
runs back to back on the same inputs, so machine noise hits both; the objectives must agree to
1e-6 relative, else the exit code is 1 (a missed target does not change the exit code).

1. Site-day: 96 steps, one solve per day of Jan 2023 (default 30 days); median and p90 per solve.
2. Site-week: 672 steps, one solve per week from 2023-01-02 (default 8 weeks).
3. 100 sites x 96 steps: 100 Dispatchers (different household days and load scales), all built,
   then one re-solve each for the next day; total wall time of the 100 (best of 3 rounds).
4. The negative-price day (aWATTar AT 2025-05-11, down to -252.6 EUR/MWh), battery full at the
   start, no degradation cost: the LP burns energy, the MILP runs (information, no target).

Each input of rows 1, 2 and 4 is solved 3 times (``--repeats``) by both, alternating, and the
fastest of each counts: on a 2-core machine shared with other work a solve of a few ms is often
preempted, and the minimum is the undisturbed time. The load average is recorded in the JSON.
Household gaps (169 hours) are filled by linear interpolation.

Output: a markdown table on stdout and everything in ``bench/out/dispatch.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pandas as pd
import yaml
from scipy import sparse

from domain.dispatch import (
    Dispatcher,
    DispatchInputs,
    SiteConfig,
    Tariff,
    export_limit_kw,
    import_fee_eur_mwh,
    load_ems_config,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "dispatch.json"
DATA = ROOT / "data"
TOL_KW = 1e-7


# -- data --------------------------------------------------------------------------------------

def default_site() -> SiteConfig:
    return load_ems_config(yaml.safe_load((ROOT / "policy" / "ems.yaml").read_text()))[0]


def load_data() -> tuple[pd.Series, pd.DataFrame]:
    prices = pd.read_csv(DATA / "at_hourly_2015_2023.csv", index_col="timestamp_utc")
    prices.index = pd.to_datetime(prices.index, utc=True)
    house = pd.read_csv(DATA / "household_residential4_hourly.csv", index_col="timestamp_utc")
    house.index = pd.to_datetime(house.index, utc=True)
    house = house.reindex(pd.date_range(house.index[0], house.index[-1], freq="h"))
    return prices["price_eur_mwh"], house.interpolate(limit_direction="both")


def inputs_for(site: SiteConfig, prices: pd.Series, house: pd.DataFrame, start: pd.Timestamp,
               hours: int, house_start: pd.Timestamp, load_scale: float,
               soc: float = 50.0) -> DispatchInputs:
    p = prices[start: start + pd.Timedelta(hours=hours - 1)].to_numpy(dtype=float)
    h = house[house_start: house_start + pd.Timedelta(hours=hours - 1)]
    assert len(p) == hours and len(h) == hours and np.isfinite(p).all(), start
    pv_scale = site.pv_peak_kw / float(house["pv_kw"].max())
    return DispatchInputs(start.to_pydatetime(), 900, np.repeat(p, 4),
                          np.repeat(h["load_kw"].to_numpy(dtype=float), 4) * load_scale,
                          np.repeat(h["pv_kw"].to_numpy(dtype=float), 4) * pv_scale, soc)


# -- the reference: the same model, built directly in highspy ---------------------------------

@dataclass
class Direct:
    """Arbitrage of `site` over `n` steps as a highspy LP (and MILP) with a fixed matrix."""

    site: SiteConfig
    n: int
    step_s: int

    def __post_init__(self) -> None:
        n, dt, b = self.n, self.step_s / 3600.0, self.site.battery
        eye = sparse.identity(n, format="csc")
        zero = sparse.csc_matrix((n, n))
        shift = sparse.eye(n, k=-1, format="csc")
        # rows: e[t] - e[t-1] - dt eta_c c[t] + dt/eta_d d[t] = (e0 at t = 0, else 0)
        dynamics = sparse.hstack([-dt * b.efficiency_charge * eye,
                                  dt / b.efficiency_discharge * eye, eye - shift, zero, zero,
                                  zero])
        # rows: imp - exp - c + d - curt = load - pv
        balance = sparse.hstack([-eye, eye, zero, eye, -eye, -eye])
        terminal = sparse.csc_matrix(([1.0], ([0], [3 * n - 1])), shape=(1, 6 * n))
        self.lp_matrix = sparse.vstack([dynamics, balance, terminal], format="csc")
        # MILP: + u; c - Pc u <= 0, d + Pd u <= Pd
        modes = sparse.hstack([
            sparse.vstack([eye, zero]), sparse.vstack([zero, eye]),
            sparse.csc_matrix((2 * n, 4 * n)),
            sparse.vstack([-b.power_charge_max_kw * eye, b.power_discharge_max_kw * eye])])
        lp_wide = sparse.hstack([self.lp_matrix, sparse.csc_matrix((2 * n + 1, n))])
        self.milp_matrix = sparse.vstack([lp_wide, modes], format="csc")

    def solve(self, inputs: DispatchInputs) -> dict[str, Any]:
        """Solve; wall time of everything from the inputs to the solution arrays."""
        t0 = time.perf_counter()
        n, dt, b, s = self.n, self.step_s / 3600.0, self.site.battery, self.site
        inf = highspy.kHighsInf
        pv = np.maximum(inputs.pv_kw, 0.0)
        e0 = b.capacity_kwh * inputs.soc_initial_pct / 100.0
        e_min, e_max = b.energy_min_kwh, b.energy_max_kwh
        e_end = min(e0, e_max) if b.soc_terminal_pct is None \
            else b.capacity_kwh * b.soc_terminal_pct / 100
        export = export_limit_kw(s, inputs.start, inputs.step_s, n)
        fee = import_fee_eur_mwh(s, inputs.start, inputs.step_s, n)
        wear = np.full(n, b.degradation_cost_eur_mwh * dt / 1000.0)
        cost = np.concatenate([wear, wear, np.zeros(n), (inputs.price_eur_mwh + fee) * dt / 1e3,
                               -(inputs.price_eur_mwh - s.tariff.export_fee_eur_mwh) * dt / 1e3,
                               np.zeros(n)])
        lower = np.concatenate([np.zeros(2 * n), np.full(n, min(e_min, e0)), np.zeros(3 * n)])
        upper = np.concatenate([
            np.full(n, b.power_charge_max_kw), np.full(n, b.power_discharge_max_kw),
            np.full(n, max(e_max, e0)),
            np.full(n, inf if s.grid_import_max_kw is None else s.grid_import_max_kw),
            np.where(np.isfinite(export), export, inf), pv])
        rhs = np.concatenate([[e0], np.zeros(n - 1), inputs.load_kw - pv])
        row_lo = np.concatenate([rhs, [e_end]])
        row_hi = np.concatenate([rhs, [inf]])
        result = self._run(self.lp_matrix, cost, lower, upper, row_lo, row_hi, None)
        x = result["x"]
        milp = bool(np.any(np.minimum(x[:n], x[n: 2 * n]) > TOL_KW))
        if milp:
            result = self._run(
                self.milp_matrix, np.concatenate([cost, np.zeros(n)]),
                np.concatenate([lower, np.zeros(n)]), np.concatenate([upper, np.ones(n)]),
                np.concatenate([row_lo, np.full(n, -inf), np.full(n, -inf)]),
                np.concatenate([row_hi, np.zeros(n), np.full(n, b.power_discharge_max_kw)]),
                6 * n)
        x = result["x"]
        grid = x[3 * n: 4 * n] - x[4 * n: 5 * n]
        return {"objective": result["objective"], "grid_kw": grid, "milp": milp,
                "run_s": result["run_s"], "wall_s": time.perf_counter() - t0}

    @staticmethod
    def _run(matrix: sparse.csc_matrix, cost: np.ndarray, lower: np.ndarray, upper: np.ndarray,
             row_lo: np.ndarray, row_hi: np.ndarray, integer_from: int | None) -> dict[str, Any]:
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
        lp.row_lower_, lp.row_upper_ = row_lo, row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        if integer_from is not None:
            lp.integrality_ = [highspy.HighsVarType.kContinuous] * integer_from + [
                highspy.HighsVarType.kInteger] * (lp.num_col_ - integer_from)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        if integer_from is not None:
            h.setOptionValue("mip_rel_gap", 1e-9)
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"highspy: {h.modelStatusToString(status)}")
        return {"x": np.asarray(h.getSolution().col_value), "run_s": h.getRunTime(),
                "objective": h.getInfo().objective_function_value}


# -- the rows ----------------------------------------------------------------------------------

def pair(dispatcher: Dispatcher, direct: Direct, inputs: DispatchInputs,
         repeats: int) -> dict[str, Any]:
    """Both solves of `inputs`, alternating, `repeats` times; the fastest of each (a 2-core
    machine shared with other work preempts some solves; the minimum is the undisturbed one)."""
    walls, runs, refs = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan = dispatcher.plan("arbitrage", inputs)
        walls.append(time.perf_counter() - t0)
        runs.append(plan.solve_time_s)
        refs.append(direct.solve(inputs))
    ref = min(refs, key=lambda r: r["wall_s"])
    rel = abs(plan.objective_eur - ref["objective"]) / max(1.0, abs(ref["objective"]))
    return {"cvxpy_s": min(walls), "cvxpy_highs_run_s": min(runs),
            "direct_s": ref["wall_s"], "direct_highs_run_s": ref["run_s"], "rel_diff": rel,
            "method": plan.method, "direct_milp": ref["milp"]}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def q(key: str, p: float) -> float:
        return float(np.quantile([r[key] for r in rows], p))
    out = {f"{k}_{name}": q(k, p) for k in ("cvxpy_s", "direct_s", "cvxpy_highs_run_s",
                                            "direct_highs_run_s")
           for name, p in (("median", 0.5), ("p90", 0.9))}
    out["ratio_median"] = out["cvxpy_s_median"] / out["direct_s_median"]
    out["max_rel_diff"] = max(r["rel_diff"] for r in rows)
    out["solves"] = len(rows)
    out["methods"] = {m: sum(r["method"] == m for r in rows) for m in {r["method"] for r in rows}}
    return out


def series(site: SiteConfig, prices: pd.Series, house: pd.DataFrame, first: str, count: int,
           hours: int, repeats: int) -> dict[str, Any]:
    dispatcher, direct = Dispatcher(site), Direct(site, hours * 4, 900)
    starts = [pd.Timestamp(first) + pd.Timedelta(hours=hours * i) for i in range(count + 1)]
    house0 = pd.Timestamp("2016-01-04T23:00Z")
    t0 = time.perf_counter()
    dispatcher.plan("arbitrage", inputs_for(site, prices, house, starts[0], hours, house0,
                                            site.load_scale))
    build = time.perf_counter() - t0
    rows = []
    for i, start in enumerate(starts[1:]):
        house_start = house0 + pd.Timedelta(hours=hours * (i + 1))
        rows.append(pair(dispatcher, direct, inputs_for(site, prices, house, start, hours,
                                                        house_start, site.load_scale), repeats))
    return {"build_s": build, **summary(rows)}


def many_sites(site: SiteConfig, prices: pd.Series, house: pd.DataFrame, n_sites: int,
               rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(42)
    day0, day1 = pd.Timestamp("2023-02-01T23:00Z"), pd.Timestamp("2023-02-02T23:00Z")
    houses = [pd.Timestamp("2015-10-20T23:00Z") + pd.Timedelta(days=int(d))
              for d in rng.integers(0, 180, n_sites)]
    scales = rng.uniform(20, 200, n_sites)
    sites = [replace(site, site_id=f"site-{i + 1}") for i in range(n_sites)]
    dispatchers = [Dispatcher(s) for s in sites]
    directs = [Direct(s, 96, 900) for s in sites]
    first = [inputs_for(s, prices, house, day0, 24, h, k) for s, h, k in
             zip(sites, houses, scales, strict=True)]
    t0 = time.perf_counter()
    for d, x in zip(dispatchers, first, strict=True):
        d.plan("arbitrage", x)
    build = time.perf_counter() - t0
    nxt = [inputs_for(s, prices, house, day1, 24, h + pd.Timedelta(days=1), k) for s, h, k in
           zip(sites, houses, scales, strict=True)]
    totals_cvxpy, totals_direct, diffs = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        plans = [d.plan("arbitrage", x) for d, x in zip(dispatchers, nxt, strict=True)]
        totals_cvxpy.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        refs = [r.solve(x) for r, x in zip(directs, nxt, strict=True)]
        totals_direct.append(time.perf_counter() - t0)
        diffs += [abs(p.objective_eur - r["objective"]) / max(1.0, abs(r["objective"]))
                  for p, r in zip(plans, refs, strict=True)]
    return {"sites": n_sites, "build_s": build, "cvxpy_total_s": min(totals_cvxpy),
            "direct_total_s": min(totals_direct), "cvxpy_rounds_s": totals_cvxpy,
            "direct_rounds_s": totals_direct,
            "ratio": min(totals_cvxpy) / min(totals_direct), "max_rel_diff": max(diffs)}


def negative_day(site: SiteConfig, repeats: int) -> dict[str, Any]:
    rows = json.loads((DATA / "samples" / "awattar_AT_2025-05-11_negative.json").read_text())
    data = rows["data"]
    start = datetime.fromtimestamp(data[0]["start_timestamp"] / 1000, UTC)
    prices = np.repeat([float(r["marketprice"]) for r in data], 4)
    s = replace(site, battery=replace(site.battery, degradation_cost_eur_mwh=0.0),
                tariff=Tariff())
    inputs = DispatchInputs(start, 900, prices, np.full(96, 100.0), np.zeros(96), 90.0)
    dispatcher, direct = Dispatcher(s), Direct(s, 96, 900)
    dispatcher.plan("arbitrage", inputs)
    out = summary([pair(dispatcher, direct, inputs, repeats)])
    out["min_price_eur_mwh"] = float(prices.min())
    return out


# -- main --------------------------------------------------------------------------------------

def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def table(r: dict[str, Any]) -> str:
    day, week, many, neg = r["site_day"], r["site_week"], r["many_sites"], r["negative_day"]
    rows = [
        (f"site-day, 96 steps (median of {day['solves']} days)",
         fmt_ms(day["cvxpy_s_median"]), fmt_ms(day["direct_s_median"]),
         f"{day['ratio_median']:.2f}x", "<= 2.5x",
         "met" if day["ratio_median"] <= 2.5 else "**missed**"),
        (f"site-week, 672 steps (median of {week['solves']} weeks)",
         fmt_ms(week["cvxpy_s_median"]), fmt_ms(week["direct_s_median"]),
         f"{week['ratio_median']:.2f}x", "<= 2x",
         "met" if week["ratio_median"] <= 2.0 else "**missed**"),
        (f"{many['sites']} sites x 96 steps, total", f"{many['cvxpy_total_s']:.2f} s",
         f"{many['direct_total_s']:.2f} s", f"{many['ratio']:.2f}x", "< 2 s",
         "met" if many["cvxpy_total_s"] < 2.0 else "**missed**"),
        (f"negative-price day, 96 steps, MILP (best of {r['config']['repeats']})",
         fmt_ms(neg["cvxpy_s_median"]), fmt_ms(neg["direct_s_median"]),
         f"{neg['ratio_median']:.2f}x", "", ""),
    ]
    lines = ["| problem (arbitrage) | cvxpy re-solve (DPP) | direct highspy | ratio | target | |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    worst = max(day["max_rel_diff"], week["max_rel_diff"], many["max_rel_diff"],
                neg["max_rel_diff"])
    lines.append("")
    lines.append(
        f"HiGHS run time alone, median: site-day {fmt_ms(day['cvxpy_highs_run_s_median'])} "
        f"(cvxpy) / {fmt_ms(day['direct_highs_run_s_median'])} (direct); site-week "
        f"{fmt_ms(week['cvxpy_highs_run_s_median'])} / "
        f"{fmt_ms(week['direct_highs_run_s_median'])}. First solve incl. the cvxpy build: "
        f"site-day {fmt_ms(day['build_s'])}, site-week {fmt_ms(week['build_s'])}, "
        f"{many['sites']} sites {many['build_s']:.2f} s. Paths: day {day['methods']}, week "
        f"{week['methods']}, negative day {neg['methods']}. Objectives agree to "
        f"{worst:.1e} relative.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, help="site-day re-solves (default 30; quick 10)")
    ap.add_argument("--weeks", type=int, help="site-week re-solves (default 8; quick 3)")
    ap.add_argument("--sites", type=int, default=100, help="sites of row 3")
    ap.add_argument("--repeats", type=int, default=3,
                    help="solves of each input (rounds of row 3); the fastest counts")
    ap.add_argument("--quick", action="store_true", help="fewer re-solves")
    args = ap.parse_args(argv)
    days = args.days or (10 if args.quick else 30)
    weeks = args.weeks or (3 if args.quick else 8)
    site = default_site()
    prices, house = load_data()
    results: dict[str, Any] = {
        "config": {"days": days, "weeks": weeks, "sites": args.sites, "repeats": args.repeats,
                   "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
                   "python": sys.version.split()[0], "platform": platform.platform(),
                   "highspy": getattr(highspy, "__version__", "?"), "site": site.site_id},
        "site_day": series(site, prices, house, "2023-01-01T23:00Z", days, 24, args.repeats),
        "site_week": series(site, prices, house, "2023-01-01T23:00Z", weeks, 168, args.repeats),
        "many_sites": many_sites(site, prices, house, args.sites, args.repeats),
        "negative_day": negative_day(site, args.repeats),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(table(results) + f"\n\n(also in {OUT.relative_to(ROOT)})")
    worst = max(results[k]["max_rel_diff"] for k in ("site_day", "site_week", "many_sites",
                                                     "negative_day"))
    return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
