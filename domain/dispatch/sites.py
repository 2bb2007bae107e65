"""Multi-site view (seed 004 2.5.1 ``get_aggregated_state``): totals over all sites and the
capacity-weighted mean SoC."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SiteState:
    """The latest known state of one site. Battery power positive = discharge; grid power
    positive = import."""

    site_id: str
    capacity_kwh: float
    soc_pct: float
    power_kw: float = 0.0
    pv_kw: float = 0.0
    load_kw: float = 0.0
    grid_kw: float = 0.0
    strategy: str | None = None


@dataclass(frozen=True)
class AggregatedState:
    site_count: int
    total_power_kw: float
    total_pv_kw: float
    total_load_kw: float
    total_grid_kw: float
    total_capacity_kwh: float
    stored_energy_kwh: float
    mean_soc_pct: float
    """Capacity-weighted: stored energy / total capacity x 100; 0 when there is no capacity."""
    sites: tuple[SiteState, ...]


def aggregate(states: Iterable[SiteState]) -> AggregatedState:
    """Totals of power, PV, load and grid over `states`, and the capacity-weighted mean SoC."""
    sites = tuple(states)
    capacity = sum(s.capacity_kwh for s in sites)
    stored = sum(s.capacity_kwh * s.soc_pct / 100.0 for s in sites)
    return AggregatedState(
        site_count=len(sites),
        total_power_kw=sum(s.power_kw for s in sites),
        total_pv_kw=sum(s.pv_kw for s in sites),
        total_load_kw=sum(s.load_kw for s in sites),
        total_grid_kw=sum(s.grid_kw for s in sites),
        total_capacity_kwh=capacity,
        stored_energy_kwh=stored,
        mean_soc_pct=stored / capacity * 100.0 if capacity > 0 else 0.0,
        sites=sites,
    )
