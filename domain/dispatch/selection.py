"""Strategy selection: one common score for every plan, the switch rule with hysteresis (seed
003 ``switch_threshold``) and the ML selector (seed 004 3.1, a random forest)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from domain.dispatch.model import (
    DispatchInputs,
    FloatArray,
    Plan,
    SiteConfig,
    export_limit_kw,
    import_fee_eur_mwh,
)


def site_cost_eur(grid_kw: FloatArray, price_eur_mwh: FloatArray, site: SiteConfig,
                  plan: Plan) -> float:
    """What the site pays over the horizon for this grid exchange: energy at the prices plus
    import fees (time-of-use) minus export earnings (price - export fee), plus the demand
    charge on the highest import. Degradation is not included (see `score`)."""
    dt = plan.step_s / 3600.0
    n = len(grid_kw)
    imp = np.maximum(grid_kw, 0.0)
    exp = np.maximum(-grid_kw, 0.0)
    buy = price_eur_mwh + import_fee_eur_mwh(site, plan.start, plan.step_s, n)
    sell = price_eur_mwh - site.tariff.export_fee_eur_mwh
    energy = float(buy @ imp - sell @ exp) * dt / 1000.0
    peak = float(imp.max()) if n else 0.0
    return energy + site.tariff.demand_charge_eur_kw * peak


def baseline_grid_kw(plan: Plan, site: SiteConfig) -> FloatArray:
    """The grid exchange without a battery: load - PV, PV export curtailed at the limits."""
    limit = export_limit_kw(site, plan.start, plan.step_s, len(plan.load_kw))
    return np.maximum(plan.load_kw - np.maximum(plan.pv_kw, 0.0), -limit)


def score(plans: Mapping[str, Plan], site: SiteConfig) -> dict[str, float]:
    """Value of each plan in EUR (higher = better) under one common site cost function: the
    site's cost without the battery minus its cost with the plan (energy at the plan's prices,
    tariffs, demand charge if configured) minus the plan's degradation cost. Plans of
    different strategies for the same inputs are comparable; 0 = as good as no battery."""
    out: dict[str, float] = {}
    for strategy, plan in plans.items():
        base = site_cost_eur(baseline_grid_kw(plan, site), plan.price_eur_mwh, site, plan)
        cost = site_cost_eur(plan.grid_kw, plan.price_eur_mwh, site, plan)
        out[strategy] = base - cost - plan.degradation_cost_eur
    return out


def select_strategy(current: str | None, scores: Mapping[str, float],
                    threshold: float) -> tuple[str, str]:
    """(strategy, reason). Keeps `current` unless the best-scoring strategy beats it by more
    than `threshold` relative to |score of current| (seed 003 ``switch_threshold``, 0.15 = 15 %).
    With no current strategy (or one without a score) the best one is taken."""
    if not scores:
        raise ValueError("no scores to select from")
    best = max(scores, key=lambda k: scores[k])
    if current is None or current not in scores:
        return best, f"initial: {best} has the best score ({scores[best]:.2f} EUR)"
    if best == current or scores[best] <= scores[current]:
        return current, f"{current} has the best score ({scores[current]:.2f} EUR)"
    base = abs(scores[current])
    gain = (scores[best] - scores[current]) / base if base > 1e-9 else math.inf
    if gain > threshold:
        return best, (f"{best} scores {scores[best]:.2f} EUR, {gain:.1%} above {current} "
                      f"({scores[current]:.2f} EUR); threshold {threshold:.0%}")
    return current, (f"kept {current}: {best} is only {gain:.1%} better "
                     f"({scores[best]:.2f} vs {scores[current]:.2f} EUR); threshold "
                     f"{threshold:.0%}")


class MlSelector:
    """Random forest on the situation of a plan (seed 004 3.1): it predicts the strategy that
    turned out best in similar situations. `observe` adds a labelled example (mutates and
    returns self); the forest is refitted lazily by the next `predict` after new examples.
    Until `min_samples` examples are in, `ready` is False and `predict` returns None: the
    caller falls back to score-based selection. The newest `max_samples` examples are kept.
    `to_dict`/`from_dict` carry the history through a processor's state changelog."""

    FEATURES = (
        "soc_pct", "price_mean_eur_mwh", "price_spread_eur_mwh", "price_std_eur_mwh",
        "price_trend_eur_mwh", "negative_price_share", "pv_share", "pv_6h_per_peak",
        "load_6h_per_power", "load_peak_per_power", "load_peak_to_mean", "load_ramp_per_power",
        "hour_of_day", "weekday", "season_sin", "season_cos", "arbitrage_potential_eur",
        "peak_potential_eur",
    )

    def __init__(self, min_samples: int = 100, max_samples: int = 5000,
                 n_estimators: int = 100, max_depth: int | None = 10,
                 random_state: int = 42) -> None:
        if min_samples < 1 or max_samples < min_samples:
            raise ValueError("need 1 <= min_samples <= max_samples")
        self.min_samples, self.max_samples = min_samples, max_samples
        self._params = {"n_estimators": n_estimators, "max_depth": max_depth,
                        "random_state": random_state}
        self._x: list[FloatArray] = []
        self._y: list[str] = []
        self._model: RandomForestClassifier | None = None

    def features(self, inputs: DispatchInputs, site: SiteConfig) -> FloatArray:
        """The feature vector (`FEATURES`) of a planning situation."""
        bat = site.battery
        price, load = inputs.price_eur_mwh, inputs.load_kw
        pv = np.maximum(inputs.pv_kw, 0.0)
        n, dt = inputs.steps, inputs.step_s / 3600.0
        six_h = max(1, min(n, int(6 * 3600 / inputs.step_s)))
        power = max(bat.power_discharge_max_kw, 1e-9)
        half = max(1, n // 2)
        trend = float(price[half:].mean() - price[:half].mean()) if n > 1 else 0.0
        load_mean = float(load.mean())
        load_peak = float(load.max())
        usable_kwh = bat.energy_max_kwh - bat.energy_min_kwh
        spread = float(price.max() - price.min())
        local = inputs.start.astimezone(ZoneInfo(site.timezone))
        season = 2 * math.pi * (local.timetuple().tm_yday - 1) / 365.25
        values = [
            inputs.soc_initial_pct, float(price.mean()), spread, float(price.std()), trend,
            float(np.mean(price < 0)),
            float(pv.sum() / max(float(np.maximum(load, 0).sum()), 1e-9)),
            float(pv[:six_h].mean() / max(site.pv_peak_kw, 1.0)),
            float(load[:six_h].mean() / power),
            load_peak / power,
            load_peak / load_mean if load_mean > 1e-9 else 0.0,
            float(np.abs(np.diff(load)).mean() / power) if n > 1 else 0.0,
            local.hour + local.minute / 60.0, float(local.weekday()),
            math.sin(season), math.cos(season),
            spread * usable_kwh * min(1.0, n * dt / 24.0) / 1000.0,
            site.tariff.demand_charge_eur_kw * min(max(load_peak - load_mean, 0.0), power),
        ]
        return np.asarray(values, dtype=float)

    def observe(self, features: Iterable[float], best_strategy: str) -> MlSelector:
        """Add one example: the situation's features and the strategy that was best in it."""
        row = np.asarray(list(features), dtype=float)
        if row.shape != (len(self.FEATURES),):
            raise ValueError(f"expected {len(self.FEATURES)} features, got {row.shape}")
        self._x.append(row)
        self._y.append(best_strategy)
        if len(self._y) > self.max_samples:
            del self._x[0], self._y[0]
        self._model = None
        return self

    @property
    def samples(self) -> int:
        return len(self._y)

    @property
    def ready(self) -> bool:
        return len(self._y) >= self.min_samples

    def predict(self, features: Iterable[float]) -> str | None:
        """The predicted best strategy, or None while not `ready`."""
        if not self.ready:
            return None
        if self._model is None:
            model = RandomForestClassifier(n_jobs=1, **self._params)
            model.fit(np.vstack(self._x), np.asarray(self._y))
            self._model = model
        row = np.asarray(list(features), dtype=float).reshape(1, -1)
        return str(self._model.predict(row)[0])

    def to_dict(self) -> dict[str, Any]:
        return {"min_samples": self.min_samples, "max_samples": self.max_samples,
                "x": [row.tolist() for row in self._x], "y": list(self._y)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MlSelector:
        selector = cls(min_samples=int(data["min_samples"]),
                       max_samples=int(data.get("max_samples", 5000)))
        for row, label in zip(data.get("x", []), data.get("y", []), strict=True):
            selector.observe(row, str(label))
        return selector
