"""EMS events and commands: forecasts, dispatch plans, strategy selection (seed 003, seed 004 2.5).

Units are in the field names. Battery power is positive when the battery discharges (as in
`schemas.telemetry`); ``charge_kw``/``discharge_kw`` are both >= 0 and never both > 0 in one
step. Energy of a step = power x ``step_s`` / 3600. Every message here is keyed by `site`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Payload, UtcDatetime
from schemas.envelope import register

Strategy = Literal["arbitrage", "peak_shaving", "self_consumption", "load_balancing"]
"""The four EMS strategies of seed 003."""

STRATEGIES: tuple[str, ...] = ("arbitrage", "peak_shaving", "self_consumption", "load_balancing")

ForecastQuantity = Literal["price", "load", "pv"]
PlanTrigger = Literal["interval", "forecast", "soc_deviation", "strategy", "start"]
SelectionMode = Literal["manual", "auto"]


class ForecastPoint(Payload):
    """One step of a forecast: quantiles of the value over ``[start, start + step_s)``."""

    start: UtcDatetime
    p10: float
    p50: float
    p90: float
    known: bool = Field(default=False,
                        description="True when the value is published (e.g. a day-ahead result), "
                                    "not forecast; then p10 = p50 = p90.")


@register
class ForecastPublished(Payload):
    """A forecast of one quantity for a site over the horizon. Key: `site`.

    `unit`: EUR/MWh for price, kW for load and PV. `model`: prophet, seasonal_naive, ensemble,
    lear, clear_sky, profile, ... `training_start`/`training_end` bound the history the model
    saw (null for models without training, such as clear_sky).
    """

    site: str
    market: str | None = Field(default=None, description="Market of a price forecast.")
    quantity: ForecastQuantity
    unit: str
    model: str
    issued_at: UtcDatetime = Field(description="Event time the forecast was made at.")
    step_s: int = Field(gt=0, description="Step length, seconds.")
    training_start: UtcDatetime | None = None
    training_end: UtcDatetime | None = None
    points: tuple[ForecastPoint, ...]

    def partition_key(self) -> str:
        return self.site


class PlanStep(Payload):
    """One step of a dispatch plan."""

    start: UtcDatetime
    power_kw: float = Field(description="Battery power, kW; positive = discharge.")
    charge_kw: float = Field(ge=0)
    discharge_kw: float = Field(ge=0)
    soc_pct: float = Field(description="SoC at the end of the step, %.")
    price_eur_mwh: float
    grid_kw: float = Field(description="Grid exchange at the connection point, kW; positive = "
                                       "import.")
    load_kw: float = 0.0
    pv_kw: float = 0.0


@register
class DispatchPlanned(Payload):
    """The EMS optimised the site's schedule over the horizon (seed 003 "24h Optimization Plan").

    Key: `site`. `expected_profit_eur` is the market value of the battery's schedule (energy
    sold minus energy bought at the plan's prices, minus degradation cost); `objective_eur`
    is the strategy's objective value. `solve_time_s` is measured by the processor.
    """

    site: str
    plan_id: str
    planned_at: UtcDatetime = Field(description="Event time the plan was made at.")
    trigger: PlanTrigger
    strategy: Strategy
    selection_mode: SelectionMode
    solver: str
    status: str = Field(description="Solver status, e.g. optimal.")
    solve_time_s: float = Field(ge=0)
    step_s: int = Field(gt=0)
    soc_initial_pct: float
    expected_profit_eur: float
    objective_eur: float
    degradation_cost_eur: float = 0.0
    steps: tuple[PlanStep, ...]

    def partition_key(self) -> str:
        return self.site


@register
class DispatchFailed(Payload):
    """The EMS could not plan the site (infeasible constraints, solver failure). Key: `site`.

    The previous plan and setpoint stay in force; the next trigger tries again.
    `reason` is one word (``infeasible``, ``solver_error``, ``bad_inputs``, ...)."""

    site: str
    failed_at: UtcDatetime
    trigger: PlanTrigger
    strategy: str | None = None
    reason: str
    detail: str = ""

    def partition_key(self) -> str:
        return self.site


@register
class StrategySelected(Payload):
    """The site's active strategy changed or was confirmed by a user. Key: `site`.

    `scores` holds the value (EUR over the horizon, higher is better) of each strategy's plan
    when the selection was automatic; `reason` says why (manual, gain over threshold, ML).
    """

    site: str
    strategy: Strategy
    mode: SelectionMode
    selected_at: UtcDatetime
    reason: str
    selector: Literal["manual", "score", "ml"] = "manual"
    scores: dict[str, float] = Field(default_factory=dict)

    def partition_key(self) -> str:
        return self.site


@register
class SetStrategy(Payload):
    """Command: use this strategy for the site (manual mode), or switch the site to auto mode
    (``mode="auto"``, `strategy` ignored). Key: `site`."""

    kind = "command"

    site: str
    mode: SelectionMode = "manual"
    strategy: Strategy | None = None
    requested_at: UtcDatetime
    requested_by: str = "api"

    @model_validator(mode="after")
    def _manual_names_a_strategy(self) -> SetStrategy:
        if self.mode == "manual" and self.strategy is None:
            raise ValueError("manual mode needs a strategy")
        return self

    def partition_key(self) -> str:
        return self.site
