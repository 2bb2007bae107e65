"""Value types of the EMS optimisation: battery, site, dispatch inputs and the plan.

Units are in the names. Power in kW, energy in kWh, prices and fees in EUR/MWh (as the market
data), SoC in % of `Battery.capacity_kwh`. Battery power is positive when discharging
(`Plan.power_kw`); grid power is positive when importing. Time is always a parameter: a plan
starts at `DispatchInputs.start` (aware UTC) and has ``len(price_eur_mwh)`` steps of ``step_s``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from schemas.ems import STRATEGIES

FloatArray = NDArray[np.float64]

DEFAULT_DEGRADATION_COST_EUR_MWH = 5.0
"""A chosen default, not a measured one: the wear cost of one MWh of throughput (charged plus
discharged energy). It is cell replacement cost / lifetime throughput, e.g. 80 EUR/kWh /
(2 x 8,000 cycles x 80 % depth of discharge) = 6.25 EUR/MWh for LFP; set your own."""


class DispatchError(Exception):
    """The EMS could not produce a plan (infeasible, solver failure, bad inputs); `reason` says
    which, in a word (``infeasible``, ``solver_error``, ``bad_inputs``, ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Battery:
    """The battery of a site. Efficiencies: a charge of P kW for an hour stores
    ``P * efficiency_charge`` kWh; a discharge of P kW for an hour draws
    ``P / efficiency_discharge`` kWh from the cells (as `domain.telemetry.battery`)."""

    capacity_kwh: float
    power_charge_max_kw: float
    power_discharge_max_kw: float
    efficiency_charge: float = 0.95
    efficiency_discharge: float = 0.95
    soc_min_pct: float = 10.0
    soc_max_pct: float = 90.0
    soc_terminal_pct: float | None = None
    """SoC the plan must end at or above. None: at or above the initial SoC (capped at
    `soc_max_pct`), so a plan never sells energy it found in the battery."""
    degradation_cost_eur_mwh: float = DEFAULT_DEGRADATION_COST_EUR_MWH
    """Wear cost per MWh of throughput, charged plus discharged (AC side). 0 switches it off."""

    def __post_init__(self) -> None:
        _positive(self.capacity_kwh, "capacity_kwh")
        _non_negative(self.power_charge_max_kw, "power_charge_max_kw")
        _non_negative(self.power_discharge_max_kw, "power_discharge_max_kw")
        for name in ("efficiency_charge", "efficiency_discharge"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0.0 <= self.soc_min_pct < self.soc_max_pct <= 100.0:
            raise ValueError(f"need 0 <= soc_min_pct < soc_max_pct <= 100, got "
                             f"{self.soc_min_pct}, {self.soc_max_pct}")
        if self.soc_terminal_pct is not None and not (
                self.soc_min_pct <= self.soc_terminal_pct <= self.soc_max_pct):
            raise ValueError(f"soc_terminal_pct must be within [soc_min_pct, soc_max_pct], got "
                             f"{self.soc_terminal_pct}")
        _non_negative(self.degradation_cost_eur_mwh, "degradation_cost_eur_mwh")

    @property
    def energy_min_kwh(self) -> float:
        return self.capacity_kwh * self.soc_min_pct / 100.0

    @property
    def energy_max_kwh(self) -> float:
        return self.capacity_kwh * self.soc_max_pct / 100.0


@dataclass(frozen=True)
class TimeWindow:
    """A daily window of local time, ``[start, end)`` in minutes after midnight. ``end <=
    start`` wraps past midnight (``22:00-06:00``); ``00:00-00:00`` is the whole day."""

    start_min: int
    end_min: int

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        """``"06:00-18:00"`` -> TimeWindow(360, 1080); ``24:00`` is allowed as an end."""
        try:
            start, end = (part.strip() for part in str(text).split("-"))
            return cls(_minutes(start), _minutes(end))
        except ValueError as exc:
            raise ValueError(f"expected a time window like '06:00-18:00', got {text!r}") from exc

    def contains(self, minute: int) -> bool:
        start, end = self.start_min, self.end_min % 1440
        if start == end:
            return True
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end


@dataclass(frozen=True)
class FeedInRule:
    window: TimeWindow
    limit_pct: float  # % of the site's PV peak power


@dataclass(frozen=True)
class FeedInLimit:
    """Feed-in limitation at the grid connection point (seed 004 2.5.2): export is limited to
    a % of the PV peak power, always (``fixed``) or per daily time window (``dynamic``; no
    limit outside the windows, the first matching rule wins). It limits all export, battery
    discharge included, because it is metered at the connection point."""

    mode: Literal["none", "fixed", "dynamic"] = "none"
    fixed_limit_pct: float = 100.0
    rules: tuple[FeedInRule, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("none", "fixed", "dynamic"):
            raise ValueError(f"mode must be none, fixed or dynamic, got {self.mode!r}")
        _non_negative(self.fixed_limit_pct, "fixed_limit_pct")
        for rule in self.rules:
            _non_negative(rule.limit_pct, "limit_pct")
        if self.mode == "dynamic" and not self.rules:
            raise ValueError("mode dynamic needs at least one rule")

    def limit_pct_at(self, minute: int) -> float | None:
        """The limit in % of PV peak at this local minute of the day; None = no limit."""
        if self.mode == "fixed":
            return self.fixed_limit_pct
        if self.mode == "dynamic":
            for rule in self.rules:
                if rule.window.contains(minute):
                    return rule.limit_pct
        return None


@dataclass(frozen=True)
class TouRule:
    window: TimeWindow
    import_fee_eur_mwh: float


@dataclass(frozen=True)
class Tariff:
    """Grid tariffs on top of the market price. Import pays price + import fee (the first
    matching time-of-use rule replaces `import_fee_eur_mwh` in its window); export earns price -
    export fee. `demand_charge_eur_kw`: EUR per kW of the highest import over the plan's horizon
    (0 = none), used by `score` and as the cost of a peak."""

    import_fee_eur_mwh: float = 0.0
    export_fee_eur_mwh: float = 0.0
    demand_charge_eur_kw: float = 0.0
    time_of_use: tuple[TouRule, ...] = ()

    def __post_init__(self) -> None:
        # non-negative fees: then importing and exporting in the same step never pays
        _non_negative(self.import_fee_eur_mwh, "import_fee_eur_mwh")
        _non_negative(self.export_fee_eur_mwh, "export_fee_eur_mwh")
        _non_negative(self.demand_charge_eur_kw, "demand_charge_eur_kw")
        for rule in self.time_of_use:
            _non_negative(rule.import_fee_eur_mwh, "import_fee_eur_mwh")

    def import_fee_at(self, minute: int) -> float:
        for rule in self.time_of_use:
            if rule.window.contains(minute):
                return rule.import_fee_eur_mwh
        return self.import_fee_eur_mwh


@dataclass(frozen=True)
class SiteConfig:
    """One site of ``ems.yaml``: its battery, markets, grid connection and strategy settings."""

    site_id: str
    name: str
    price_market: str
    trading_market: str
    bidding_zone: str
    latitude: float
    longitude: float
    pv_peak_kw: float
    battery: Battery
    grid_import_max_kw: float | None
    grid_export_max_kw: float | None
    feed_in: FeedInLimit
    tariff: Tariff
    selection_mode: str
    manual_strategy: str
    switch_threshold: float = 0.15
    auto_trading: bool = False
    optimisation_interval_s: int = 900
    horizon_s: int = 86400
    step_s: int = 900
    soc_deviation_pct: float = 5.0
    load_profile: str | None = None
    load_scale: float = 1.0
    weather_file: str | None = None
    """CSV with ``timestamp_utc, cloud_cover_pct`` (a weather forecast or observation): the
    clear-sky PV forecast is reduced by it (Kasten-Czeplak); None = clear sky."""
    timezone: str = "Europe/Vienna"
    """Local time of the time-of-day feed-in rules and time-of-use tariffs."""
    ml_selection: bool = True
    """Auto mode: let the ML selector choose once it has `ml_min_samples` labelled plans."""
    ml_min_samples: int = 100

    def __post_init__(self) -> None:
        if not self.site_id:
            raise ValueError("site_id must not be empty")
        _non_negative(self.pv_peak_kw, "pv_peak_kw")
        for name in ("grid_import_max_kw", "grid_export_max_kw"):
            value = getattr(self, name)
            if value is not None:
                _non_negative(value, name)
        if self.selection_mode not in ("manual", "auto"):
            raise ValueError(f"selection_mode must be manual or auto, got "
                             f"{self.selection_mode!r}")
        if self.manual_strategy not in STRATEGIES:
            raise ValueError(f"manual_strategy must be one of {', '.join(STRATEGIES)}, got "
                             f"{self.manual_strategy!r}")
        _non_negative(self.switch_threshold, "switch_threshold")
        for name in ("optimisation_interval_s", "horizon_s", "step_s", "ml_min_samples"):
            _positive(getattr(self, name), name)
        if self.horizon_s % self.step_s:
            raise ValueError(f"horizon_s ({self.horizon_s}) must be a multiple of step_s "
                             f"({self.step_s})")
        _positive(self.soc_deviation_pct, "soc_deviation_pct")
        _non_negative(self.load_scale, "load_scale")
        ZoneInfo(self.timezone)  # raises for an unknown zone

    @property
    def steps(self) -> int:
        return self.horizon_s // self.step_s


@dataclass(frozen=True, eq=False)
class DispatchInputs:
    """What a plan is computed from: prices (EUR/MWh), site load and PV (kW) per step (a
    forecast, a published day-ahead result or both), and the battery's SoC at `start`."""

    start: datetime
    step_s: int
    price_eur_mwh: FloatArray
    load_kw: FloatArray
    pv_kw: FloatArray
    soc_initial_pct: float

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        _positive(self.step_s, "step_s")
        n = len(self.price_eur_mwh)
        if n == 0:
            raise ValueError("need at least one step")
        for name in ("price_eur_mwh", "load_kw", "pv_kw"):
            values = np.asarray(getattr(self, name), dtype=float)
            if values.shape != (n,):
                raise ValueError(f"{name} has shape {values.shape}, expected ({n},)")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{name} has missing or infinite values")
            object.__setattr__(self, name, values)
        if not math.isfinite(self.soc_initial_pct):
            raise ValueError("soc_initial_pct must be finite")

    @property
    def steps(self) -> int:
        return len(self.price_eur_mwh)

    def times(self) -> list[datetime]:
        return [self.start + timedelta(seconds=i * self.step_s) for i in range(self.steps)]


@dataclass(frozen=True, eq=False)
class Plan:
    """An optimised schedule. ``soc_pct[i]`` is the SoC at the END of step i; ``grid_kw``
    positive = import. `expected_profit_eur` is the market value of the battery's schedule
    (discharged minus charged energy at the plan's prices) minus its degradation cost;
    `objective_eur` is the strategy's objective (EUR, lower is better); `status` is
    ``optimal`` or ``feasible`` (the MILP's time limit stopped it; see `optimality_gap_eur`);
    `solve_time_s` is the solver's own run time (cvxpy ``solver_stats.solve_time``, summed over
    every LP and MILP solve of the plan)."""

    strategy: str
    status: str
    solver: str
    solve_time_s: float
    objective_eur: float
    expected_profit_eur: float
    degradation_cost_eur: float
    start: datetime
    step_s: int
    charge_kw: FloatArray
    discharge_kw: FloatArray
    soc_pct: FloatArray
    grid_kw: FloatArray
    price_eur_mwh: FloatArray
    load_kw: FloatArray
    pv_kw: FloatArray
    curtailment_kw: FloatArray = field(default_factory=lambda: np.zeros(0))
    """PV the plan curtails (feed-in limit, negative prices); empty when not computed."""
    method: str = "lp"
    """How the no-simultaneous-charge-and-discharge rule was met: ``lp`` (the LP's optimum had
    no such step), ``modes`` (modes fixed, certified optimal by the LP bound), ``milp`` (the
    MILP with a mode binary); see `domain.dispatch.optimiser`."""
    optimality_gap_eur: float = 0.0
    """Certified upper bound of the distance to the optimum (0 unless status is feasible)."""

    @property
    def power_kw(self) -> FloatArray:
        """Battery power per step, kW; positive = discharge."""
        return self.discharge_kw - self.charge_kw

    @property
    def steps(self) -> int:
        return len(self.charge_kw)

    @property
    def throughput_kwh(self) -> float:
        return float(np.sum(self.charge_kw + self.discharge_kw) * self.step_s / 3600.0)


# -- per-step site data ------------------------------------------------------------------------

def local_minutes(start: datetime, step_s: int, steps: int, timezone: str) -> list[int]:
    """Local minute of the day at the start of every step."""
    zone = ZoneInfo(timezone)
    out = []
    for i in range(steps):
        local = (start + timedelta(seconds=i * step_s)).astimezone(zone)
        out.append(local.hour * 60 + local.minute)
    return out


def export_limit_kw(site: SiteConfig, start: datetime, step_s: int, steps: int) -> FloatArray:
    """The export limit of every step (grid connection and feed-in limitation); inf = none."""
    limit = np.full(steps, math.inf if site.grid_export_max_kw is None
                    else site.grid_export_max_kw)
    if site.feed_in.mode != "none":
        for i, minute in enumerate(local_minutes(start, step_s, steps, site.timezone)):
            pct = site.feed_in.limit_pct_at(minute)
            if pct is not None:
                limit[i] = min(limit[i], pct / 100.0 * site.pv_peak_kw)
    return limit


def import_fee_eur_mwh(site: SiteConfig, start: datetime, step_s: int, steps: int) -> FloatArray:
    """The import fee of every step (time-of-use rules or the flat fee)."""
    if not site.tariff.time_of_use:
        return np.full(steps, site.tariff.import_fee_eur_mwh)
    minutes = local_minutes(start, step_s, steps, site.timezone)
    return np.array([site.tariff.import_fee_at(m) for m in minutes], dtype=float)


# -- helpers -----------------------------------------------------------------------------------

def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(minutes) < 60 and 0 <= value <= 1440):
        raise ValueError(text)
    return value


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def _positive(value: float, name: str) -> None:
    if not (_number(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _non_negative(value: float, name: str) -> None:
    if not (_number(value) and value >= 0):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
