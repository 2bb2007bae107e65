"""The physics of the simulated battery: SoC from power with efficiencies and limits, heating.

Power is positive when discharging. Charging stores `power * dt * eta_charge`, discharging
draws `power * dt / eta_discharge` from the cells. The battery follows its setpoint within the
power limits and stops at the SoC limits. Temperature rises with the losses and relaxes to the
ambient: dT/dt = heat_c_per_mwh_loss * loss_mw / 3600 - (T - ambient) / tau.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BatteryParams:
    capacity_mwh: float = 4.0
    max_charge_mw: float = 2.0
    max_discharge_mw: float = 2.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min_pct: float = 5.0
    soc_max_pct: float = 95.0
    ambient_c: float = 25.0
    heat_c_per_mwh_loss: float = 400.0
    cooling_tau_s: float = 1800.0


@dataclass(frozen=True)
class BatteryState:
    soc_pct: float = 50.0
    power_mw: float = 0.0
    temperature_c: float = 25.0
    setpoint_mw: float = 0.0
    soh_pct: float = 98.5


def clamp(x: float, low: float, high: float) -> float:
    return max(low, min(high, x))


def step(state: BatteryState, params: BatteryParams, dt_s: float) -> BatteryState:
    """The state `dt_s` seconds later, following the setpoint within all limits."""
    if dt_s <= 0:
        return state
    dt_h = dt_s / 3600.0
    energy = state.soc_pct / 100.0 * params.capacity_mwh
    e_min = params.soc_min_pct / 100.0 * params.capacity_mwh
    e_max = params.soc_max_pct / 100.0 * params.capacity_mwh
    p = clamp(state.setpoint_mw, -params.max_charge_mw, params.max_discharge_mw)
    if p > 0:
        p = min(p, max(0.0, energy - e_min) * params.eta_discharge / dt_h)
        drawn = p * dt_h / params.eta_discharge
        energy -= drawn
        loss = drawn - p * dt_h
    elif p < 0:
        p = max(p, -max(0.0, e_max - energy) / (params.eta_charge * dt_h))
        stored = -p * dt_h * params.eta_charge
        energy += stored
        loss = -p * dt_h - stored
    else:
        loss = 0.0
    soc = clamp(energy / params.capacity_mwh * 100.0,
                min(params.soc_min_pct, state.soc_pct), max(params.soc_max_pct, state.soc_pct))
    cooling = (state.temperature_c - params.ambient_c) * min(1.0, dt_s / params.cooling_tau_s)
    temperature = state.temperature_c + params.heat_c_per_mwh_loss * loss - cooling
    return replace(state, soc_pct=soc, power_mw=p, temperature_c=temperature)
