"""The EMS optimisation: one site's battery schedule for each of the four strategies (seed 003).

Model (per step t of length dt hours, n steps; kW, kWh, EUR):

    e[t]   = e[t-1] + dt * (eta_c * c[t] - d[t] / eta_d),   e[-1] = e0    (SoC dynamics)
    imp[t] - exp[t] = load[t] - pv[t] + curt[t] + c[t] - d[t]             (grid balance)
    0 <= c <= P_c,  0 <= d <= P_d,  0 <= curt <= pv
    e_lo <= e <= e_hi,  e[n-1] >= e_end                                  (SoC limits, terminal)
    0 <= imp <= grid import max,  0 <= exp <= export limit[t]            (connection, feed-in)

Every objective contains the site's energy cost ``dt/1000 * (buy @ imp - sell @ exp)`` (buy =
price + import fee, sell = price - export fee) and the degradation cost ``deg * dt/1000 *
sum(c + d)``; arbitrage minimises just that. Peak shaving adds ``PEAK_WEIGHT_EUR_KW * peak``
with ``peak >= imp``; self-consumption adds ``SELF_CONSUMPTION_WEIGHT_EUR_KWH * dt * sum(imp)``;
load balancing adds ramps ``|g[t] - g[t-1]|`` and deviations ``|g[t] - mean(g)|`` of the net grid
power g = imp - exp (LP with abs variables), a throughput cost that makes burning energy
unprofitable (`THROUGHPUT_WEIGHT_EUR_KW`) and a cost of curtailed PV
(`CURTAILMENT_WEIGHT_EUR_KW`). The weights make the strategy's own goal dominate and leave the
energy cost as a tie-break.

No simultaneous charge and discharge: an LP charges and discharges at once when burning energy
in the losses pays (prices below about -20 x the degradation cost; load balancing raising a
low grid import). The MILP with a mode binary ``u`` (``c <= P_c u``, ``d <= P_d (1 - u)``)
excludes it, but is 10-30x slower than the LP and on a week of load balancing does not close its
gap within minutes. So each plan takes these steps and stops at the first that is done:

1. the LP. Without a step where both ``c`` and ``d`` exceed `SIMULTANEOUS_TOL_KW` its optimum is
   feasible for the MILP and so the MILP's optimum (method ``lp``);
2. fix the mode of each simultaneous step to the sign of its SoC change (charge-only or
   discharge-only, via the Parameters ``charge_max``/``discharge_max``) and re-solve, until no
   step is simultaneous. The first LP's value is a lower bound of the MILP's, this one an upper
   bound: when they agree within `GAP_TOLERANCE` the plan is optimal (method ``modes``);
3. the MILP (time limit `MILP_TIME_LIMIT_S`); its modes are then fixed in the LP to remove the
   integrality tolerance (method ``milp``). If the time limit stops it, the better of its
   incumbent and step 2 is returned with status ``feasible`` and the certified gap.

Each problem is built once per (strategy, steps, step_s, milp) with cvxpy Parameters for the
prices, fees, load, PV, export limits, power limits, initial and terminal SoC, and re-solved
with new values (DPP: ``problem.is_dpp()``), so only the parameter-to-matrix map runs again.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import numpy.typing as npt

from domain.dispatch.model import (
    DispatchError,
    DispatchInputs,
    FloatArray,
    Plan,
    SiteConfig,
    export_limit_kw,
    import_fee_eur_mwh,
)
from schemas.ems import STRATEGIES

PEAK_WEIGHT_EUR_KW = 1000.0
"""Peak shaving: cost of one kW of peak grid import in the objective (dominates energy cost)."""
SELF_CONSUMPTION_WEIGHT_EUR_KWH = 1.0
"""Self-consumption: cost of one kWh of grid import in the objective (above any normal price)."""
RAMP_WEIGHT_EUR_KW = 1.0
"""Load balancing: cost of one kW of change of the grid power between consecutive steps."""
DEVIATION_WEIGHT_EUR_KW = 0.25
"""Load balancing: cost per step of one kW of grid power away from the horizon's mean."""
THROUGHPUT_WEIGHT_EUR_KW = 0.15
"""Load balancing: cost per step of one kW of charge or discharge. Without it the LP burns
energy (charges and discharges at once) to lift low grid power: burning x kW changes the grid
by (1 - eta_c eta_d) x ~ 0.0975 x and that gains at most (2 ramps x 1 + 2 x 0.25 deviation)
x 0.0975 x = 0.244 x, less than the (1 + eta_c eta_d) x 0.15 x = 0.285 x this costs; shifting
energy from a peak to a valley still pays (>= 0.5 EUR per kW shifted)."""
CURTAILMENT_WEIGHT_EUR_KW = 3.0
"""Load balancing: cost per step of one kW of curtailed PV, above the most that one kW less of
grid power can gain in ramps and deviations (2.5), so PV is not thrown away to flatten the grid
(only where the export limits force it)."""
SIMULTANEOUS_TOL_KW = 1e-7
"""Charge and discharge both above this in one step send the plan to the MILP."""
GAP_TOLERANCE = 1e-7
"""Relative (to max(1, |objective|)) gap under which a plan counts as optimal."""
MILP_TIME_LIMIT_S = 5.0
LP_OPTIONS: dict[str, Any] = {}
MILP_OPTIONS: dict[str, Any] = {"mip_rel_gap": 1e-9}
OK_STATUSES = ("optimal", "optimal_inaccurate")


@dataclass(frozen=True)
class _Solution:
    """The values of one solve (the problem's variables are overwritten by the next)."""

    value: float
    charge_kw: FloatArray
    discharge_kw: FloatArray
    energy_kwh: FloatArray
    grid_kw: FloatArray
    curtailment_kw: FloatArray


class _Problem:
    """One parametrised cvxpy problem (built once, re-solved with new parameter values)."""

    def __init__(self, site: SiteConfig, strategy: str, steps: int, step_s: int,
                 milp: bool) -> None:
        n, dt, bat = steps, step_s / 3600.0, site.battery
        self.steps, self.step_s, self.milp = n, step_s, milp
        # parameters: everything that changes between solves
        self.buy = cp.Parameter(n, name="buy_eur_mwh")
        self.sell = cp.Parameter(n, name="sell_eur_mwh")
        self.load = cp.Parameter(n, name="load_kw")
        self.pv = cp.Parameter(n, nonneg=True, name="pv_kw")
        self.export_max = cp.Parameter(n, nonneg=True, name="export_max_kw")
        self.charge_max = cp.Parameter(n, nonneg=True, name="charge_max_kw")
        self.discharge_max = cp.Parameter(n, nonneg=True, name="discharge_max_kw")
        self.e0 = cp.Parameter(name="energy_initial_kwh")
        self.e_lo = cp.Parameter(name="energy_min_kwh")
        self.e_hi = cp.Parameter(name="energy_max_kwh")
        self.e_end = cp.Parameter(name="energy_terminal_kwh")
        # variables (simple bounds go to the solver as column bounds)
        self.c = cp.Variable(n, name="charge_kw", bounds=[0, self.charge_max])
        self.d = cp.Variable(n, name="discharge_kw", bounds=[0, self.discharge_max])
        self.e = cp.Variable(n, name="energy_kwh", bounds=[self.e_lo, self.e_hi])
        imp_max = site.grid_import_max_kw
        self.imp = cp.Variable(n, name="import_kw",
                               bounds=[0, imp_max] if imp_max is not None else None,
                               nonneg=imp_max is None)
        # a bound with a Parameter on a variable that the objective multiplies by a Parameter
        # is not DPP (cvxpy sees parameter x parameter), so the export limit is a row
        self.exp = cp.Variable(n, name="export_kw", nonneg=True)
        self.curt = cp.Variable(n, name="curtailment_kw", bounds=[0, self.pv])
        flow = bat.efficiency_charge * self.c - self.d / bat.efficiency_discharge
        constraints = [
            self.e[0] == self.e0 + dt * flow[0],
            self.imp - self.exp == self.load - self.pv + self.curt + self.c - self.d,
            self.e[n - 1] >= self.e_end,
            self.exp <= self.export_max,
        ]
        if n > 1:
            constraints.append(self.e[1:] == self.e[:-1] + dt * flow[1:])
        if milp:
            self.u = cp.Variable(n, boolean=True, name="charging")
            constraints += [self.c <= bat.power_charge_max_kw * self.u,
                            self.d <= bat.power_discharge_max_kw * (1 - self.u)]
        energy_cost = dt / 1000.0 * (self.buy @ self.imp - self.sell @ self.exp)
        degradation = bat.degradation_cost_eur_mwh * dt / 1000.0 * (self.c + self.d).sum()
        objective = energy_cost + degradation
        grid = self.imp - self.exp
        if strategy == "peak_shaving":
            peak = cp.Variable(nonneg=True, name="peak_import_kw")
            constraints.append(self.imp <= peak)
            objective = objective + PEAK_WEIGHT_EUR_KW * peak
        elif strategy == "self_consumption":
            objective = objective + SELF_CONSUMPTION_WEIGHT_EUR_KWH * dt * self.imp.sum()
        elif strategy == "load_balancing":
            mean = cp.Variable(name="mean_grid_kw")
            deviation = cp.Variable(n, nonneg=True, name="deviation_kw")
            constraints += [n * mean == grid.sum(),
                            deviation >= grid - mean, deviation >= mean - grid]
            objective = objective + DEVIATION_WEIGHT_EUR_KW * deviation.sum() \
                + THROUGHPUT_WEIGHT_EUR_KW * (self.c + self.d).sum() \
                + CURTAILMENT_WEIGHT_EUR_KW * self.curt.sum()
            if n > 1:
                ramp = cp.Variable(n - 1, nonneg=True, name="ramp_kw")
                constraints += [ramp >= grid[1:] - grid[:-1], ramp >= grid[:-1] - grid[1:]]
                objective = objective + RAMP_WEIGHT_EUR_KW * ramp.sum()
        elif strategy != "arbitrage":
            raise DispatchError("unknown_strategy", strategy)
        self.problem = cp.Problem(cp.Minimize(objective), constraints)

    def solve(self, options: dict[str, Any]) -> float:
        """Solve with the current parameter values; the solver's run time, s. A MILP stopped
        by its time limit with an incumbent is not an error (status ``user_limit``)."""
        try:
            with warnings.catch_warnings():  # the status says it; no warning on stderr
                warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
                # no warm start: a plan depends on its inputs only (replays give the same plan)
                self.problem.solve(  # type: ignore[no-untyped-call]
                    solver=cp.HIGHS, warm_start=False, **options)
        except cp.error.SolverError as exc:
            raise DispatchError("solver_error", str(exc)) from exc
        status = str(self.problem.status)
        if status not in OK_STATUSES and not (
                self.milp and status == "user_limit" and self.c.value is not None):
            raise DispatchError("infeasible" if "infeasible" in status else "solver_" + status,
                                f"HiGHS status {status}")
        stats = self.problem.solver_stats
        return float(stats.solve_time or 0.0) if stats is not None else 0.0

    def solution(self) -> _Solution:
        return _Solution(
            value=float(self.problem.value), charge_kw=_array(self.c),
            discharge_kw=_array(self.d), energy_kwh=_array(self.e, clip=False),
            grid_kw=_array(self.imp) - _array(self.exp), curtailment_kw=_array(self.curt))

    def simultaneous(self) -> npt.NDArray[np.bool_]:
        return np.minimum(_array(self.c), _array(self.d)) > SIMULTANEOUS_TOL_KW

    def mip_dual_bound(self) -> float:
        stats = self.problem.solver_stats
        info = getattr(stats, "extra_stats", None) if stats is not None else None
        bound = getattr(info, "mip_dual_bound", None)
        return float(bound) if bound is not None and math.isfinite(bound) else -math.inf


class Dispatcher:
    """Plans one site. Problems are cached per (strategy, steps, step_s, milp) and re-solved
    with new parameter values; a Dispatcher is not thread-safe (one per site and worker)."""

    def __init__(self, site: SiteConfig, *, milp_time_limit_s: float = MILP_TIME_LIMIT_S) -> None:
        self.site = site
        self.milp_time_limit_s = milp_time_limit_s
        self._problems: dict[tuple[str, int, int, bool], _Problem] = {}

    def problem(self, strategy: str, steps: int, step_s: int | None = None, *,
                milp: bool = False) -> cp.Problem:
        """The cached cvxpy problem (built on first use), e.g. for ``is_dpp()``."""
        return self._get(strategy, steps, step_s or self.site.step_s, milp).problem

    def _get(self, strategy: str, steps: int, step_s: int, milp: bool) -> _Problem:
        if strategy not in STRATEGIES:
            raise DispatchError("unknown_strategy",
                                f"{strategy!r}; expected one of {', '.join(STRATEGIES)}")
        key = (strategy, steps, step_s, milp)
        found = self._problems.get(key)
        if found is None:
            found = self._problems[key] = _Problem(self.site, strategy, steps, step_s, milp)
        return found

    def plan(self, strategy: str, inputs: DispatchInputs) -> Plan:
        """The optimal plan of `strategy` for `inputs`; raises DispatchError with a reason."""
        n, step_s, bat = inputs.steps, inputs.step_s, self.site.battery
        values = self._values(inputs)
        lp = self._get(strategy, n, step_s, milp=False)
        _assign(lp, values)
        solve_time = lp.solve(LP_OPTIONS)
        if not lp.simultaneous().any():
            return self._plan(strategy, inputs, lp.solution(), solve_time, "lp", "optimal", 0.0)
        lower = float(lp.problem.value)
        best: _Solution | None = None
        # step 2: fix the modes of simultaneous steps until there are none
        allow_c, allow_d = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
        try:
            while (both := lp.simultaneous()).any():
                stored = bat.efficiency_charge * _array(lp.c) \
                    - _array(lp.d) / bat.efficiency_discharge
                allow_d[both & (stored > 0)] = False
                allow_c[both & (stored <= 0)] = False
                solve_time += self._solve_modes(lp, allow_c, allow_d)
            best = lp.solution()
        except DispatchError:  # fixed modes can be infeasible (export limit): the MILP decides
            pass
        if best is not None and best.value - lower <= _tolerance(best.value):
            return self._plan(strategy, inputs, best, solve_time, "modes", "optimal",
                              max(best.value - lower, 0.0))
        # step 3: the MILP, then its modes fixed in the LP
        mip = self._get(strategy, n, step_s, milp=True)
        _assign(mip, values)
        method = "modes"
        try:
            solve_time += mip.solve({**MILP_OPTIONS, "time_limit": self.milp_time_limit_s})
            finished = mip.problem.status in OK_STATUSES
            if not finished:
                lower = max(lower, mip.mip_dual_bound())
            charging = np.round(np.asarray(mip.u.value, dtype=float)) > 0.5
            solve_time += self._solve_modes(lp, charging, ~charging)
            polished = lp.solution()
            if finished or best is None or polished.value < best.value:
                best, method = polished, "milp"
        except DispatchError:
            if best is None:
                raise
            finished = False
        assert best is not None
        gap = 0.0 if finished else max(best.value - lower, 0.0)
        status = "optimal" if finished or gap <= _tolerance(best.value) else "feasible"
        return self._plan(strategy, inputs, best, solve_time, method, status, gap)

    def _solve_modes(self, lp: _Problem, allow_c: npt.NDArray[np.bool_],
                     allow_d: npt.NDArray[np.bool_]) -> float:
        bat = self.site.battery
        _assign(lp, {"charge_max": np.where(allow_c, bat.power_charge_max_kw, 0.0),
                     "discharge_max": np.where(allow_d, bat.power_discharge_max_kw, 0.0)})
        return lp.solve(LP_OPTIONS)

    def plan_all(self, inputs: DispatchInputs) -> dict[str, Plan]:
        """A plan per strategy; a strategy that fails is left out (all failing raises)."""
        plans: dict[str, Plan] = {}
        first_error: DispatchError | None = None
        for strategy in STRATEGIES:
            try:
                plans[strategy] = self.plan(strategy, inputs)
            except DispatchError as exc:
                first_error = first_error or exc
        if not plans and first_error is not None:
            raise first_error
        return plans

    # -- parameter values and results ----------------------------------------------------------

    def _values(self, inputs: DispatchInputs) -> dict[str, Any]:
        site, bat = self.site, self.site.battery
        n, dt = inputs.steps, inputs.step_s / 3600.0
        price = inputs.price_eur_mwh
        pv = np.maximum(inputs.pv_kw, 0.0)
        export_max = export_limit_kw(site, inputs.start, inputs.step_s, n)
        # "no limit" as a finite bound that can never bind
        never = pv + np.maximum(-inputs.load_kw, 0.0) + bat.power_discharge_max_kw + 1.0
        export_max = np.where(np.isfinite(export_max), np.minimum(export_max, never), never)
        e0 = bat.capacity_kwh * inputs.soc_initial_pct / 100.0
        e_lo, e_hi = min(bat.energy_min_kwh, e0), max(bat.energy_max_kwh, e0)
        if bat.soc_terminal_pct is None:
            e_end = min(e0, bat.energy_max_kwh)
        else:
            e_end = bat.capacity_kwh * bat.soc_terminal_pct / 100.0
        reachable = e0 + n * dt * bat.power_charge_max_kw * bat.efficiency_charge
        e_end = min(e_end, reachable, e_hi)
        if site.grid_import_max_kw is not None and not math.isinf(site.grid_import_max_kw):
            short = inputs.load_kw - pv - bat.power_discharge_max_kw - site.grid_import_max_kw
            if np.any(short > 1e-9):
                raise DispatchError("infeasible",
                                    f"load exceeds grid_import_max_kw + battery power in step "
                                    f"{int(np.argmax(short > 1e-9))}")
        return {
            "buy": price + import_fee_eur_mwh(site, inputs.start, inputs.step_s, n),
            "sell": price - site.tariff.export_fee_eur_mwh,
            "load": inputs.load_kw, "pv": pv, "export_max": export_max,
            "charge_max": np.full(n, bat.power_charge_max_kw),
            "discharge_max": np.full(n, bat.power_discharge_max_kw),
            "e0": e0, "e_lo": e_lo, "e_hi": e_hi, "e_end": e_end,
        }

    def _plan(self, strategy: str, inputs: DispatchInputs, sol: _Solution, solve_time: float,
              method: str, status: str, gap: float) -> Plan:
        bat = self.site.battery
        dt = inputs.step_s / 3600.0
        charge, discharge = sol.charge_kw, sol.discharge_kw
        degradation = bat.degradation_cost_eur_mwh * float(np.sum(charge + discharge)) * dt / 1e3
        value = float(np.sum(inputs.price_eur_mwh * (discharge - charge))) * dt / 1e3
        return Plan(
            strategy=strategy, status=status, solver="HIGHS", solve_time_s=solve_time,
            objective_eur=sol.value, expected_profit_eur=value - degradation,
            degradation_cost_eur=degradation, start=inputs.start, step_s=inputs.step_s,
            charge_kw=charge, discharge_kw=discharge,
            soc_pct=sol.energy_kwh / bat.capacity_kwh * 100.0, grid_kw=sol.grid_kw,
            price_eur_mwh=inputs.price_eur_mwh.copy(), load_kw=inputs.load_kw.copy(),
            pv_kw=inputs.pv_kw.copy(), curtailment_kw=sol.curtailment_kw, method=method,
            optimality_gap_eur=gap)


def _tolerance(objective: float) -> float:
    return GAP_TOLERANCE * max(1.0, abs(objective))


def _assign(problem: _Problem, values: dict[str, Any]) -> None:
    """Set Parameter values. `save_value` skips cvxpy's per-assignment validation (a quarter of
    a millisecond each): the values come from `_values`, finite and of the right shapes."""
    for name, value in values.items():
        parameter = getattr(problem, name)
        array = np.asarray(value, dtype=float)
        if array.shape != parameter.shape:
            raise DispatchError("bad_inputs", f"{name} has shape {array.shape}, expected "
                                              f"{parameter.shape}")
        parameter.save_value(array)


def _array(variable: cp.Variable, *, clip: bool = True) -> FloatArray:
    """The solution of `variable`; `clip` removes the solver's -1e-12 at a zero bound."""
    values = np.asarray(variable.value, dtype=float)
    return np.maximum(values, 0.0) if clip else values


