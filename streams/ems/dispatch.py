"""Wiring of the dispatch processor (keyed by site): forecasts -> plan -> setpoint -> orders.

Consumes ``ems.forecasts.v1`` (price forecasts of the forecaster), ``ems.commands.v1``
(`SetStrategy`), ``telemetry.readings.v1`` (SoC) and ``system.clock.v1``, all keyed by site or
broadcast, co-partitioned. A site is planned again when

- a new price forecast arrives (``forecast``),
- its strategy or mode is set (``strategy``),
- a SoC reading deviates from the plan by more than the site's ``soc_deviation_pct``
  (``soc_deviation``; readings outside the plan's horizon do not count),
- the clock passes ``optimisation_interval_s`` since the last plan (``interval``).

Planning builds the optimiser's inputs (the price forecast's P50, the site's load forecast from
its profile, PV from the clear-sky model, SoC from the latest reading), solves with
`domain.dispatch` (every strategy in auto mode, scored, switching only above
``switch_threshold``, or the ML selector once it has enough history), and publishes
`DispatchPlanned`, `StrategySelected` when the strategy changes, `SetpointIssued` for the
current step and, with ``auto_trading``, the `SubmitOrder` that brings the site's intraday
orders for the next open delivery period to the plan (through pre-trade risk like any order).
All outputs, the state and the input offsets commit in one Kafka transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson

from domain.dispatch import (
    Dispatcher,
    DispatchError,
    DispatchInputs,
    MlSelector,
    Plan,
    SiteConfig,
    score,
    select_strategy,
)
from domain.forecasting import Forecast, ForecastOptions, best, clear_sky_pv, forecast
from infra.logging import get_logger
from infra.metrics import EMS_PLANS, EMS_PROFIT, EMS_SETPOINT, EMS_SOLVE
from infra.settings import Settings
from schemas.catalog import (
    CLOCK,
    EMS_COMMANDS,
    FORECASTS,
    ORDER_COMMANDS_TOPIC,
    PLANS,
    SETPOINTS,
    TELEMETRY_READINGS,
)
from schemas.clock import ClockTicked
from schemas.ems import (
    DispatchFailed,
    DispatchPlanned,
    ForecastPoint,
    ForecastPublished,
    PlanStep,
    SetStrategy,
    StrategySelected,
)
from schemas.envelope import new_envelope
from schemas.telemetry import SetpointIssued, TelemetryReceived
from streams.ems.forecaster import floor_time
from streams.ems.sites import profile_history, read_sites, weather_cover
from streams.ems.state import ML_HISTORY, SiteState, order_for, price_curve, soc_deviates
from streams.runtime import Emit, Output, Processor, Runtime

NAME = "dispatch"
SOURCE = "streams.dispatch"
ACCEPTED = (ForecastPublished, SetStrategy, TelemetryReceived, ClockTicked)
PRIORITY = {"strategy": 4, "soc_deviation": 3, "forecast": 2, "start": 1, "interval": 1}
PLAN_NAMESPACE = uuid.UUID("8a5e7f0e-4c1d-4d7b-9d57-3c2b1a0f9e44")
GATE_CLOSURE_S = 300
ML_REFIT = 24
"""New labelled plans before the ML selector is refitted."""
log = get_logger("streams.dispatch")


class DispatchProcessor(Processor):
    name = NAME
    inputs = (FORECASTS.name, EMS_COMMANDS.name, TELEMETRY_READINGS.name, CLOCK.name)
    partitions = FORECASTS.partitions

    def __init__(self, sites: Sequence[SiteConfig], *, order_tolerance_eur_mwh: float = 5.0,
                 load_history_days: int = 28) -> None:
        self.sites = {s.site_id: s for s in sites}
        self.tolerance = order_tolerance_eur_mwh
        self.load_history_days = load_history_days
        self.dispatchers: dict[str, Dispatcher] = {}
        self.selectors: dict[str, MlSelector] = {}
        self.states: dict[int, dict[str, SiteState]] = {}

    # --- state -------------------------------------------------------------------------
    def restore(self, partition: int, state: dict[bytes, bytes]) -> None:
        self.states[partition] = {k.decode(): SiteState.from_dict(orjson.loads(v))
                                  for k, v in state.items()}

    def revoke(self, partition: int) -> None:
        self.states.pop(partition, None)

    # --- the loop ----------------------------------------------------------------------
    def handle(self, partition: int, records: Sequence[Any], out: Output) -> None:
        states = self.states.setdefault(partition, {})
        triggers: dict[str, tuple[str, datetime]] = {}
        changed: set[str] = set()

        def trigger(site: str, why: str, at: datetime) -> None:
            old = triggers.get(site)
            if old is None or PRIORITY[why] >= PRIORITY[old[0]]:
                triggers[site] = (why, at if old is None else max(at, old[1]))

        for record in records:
            envelope = self.decode(record, out, ACCEPTED)
            if envelope is None:
                continue
            payload = envelope.payload
            if isinstance(payload, ClockTicked):
                for site, state in states.items():
                    state.advance(payload.at)
                    changed.add(site)
                    if self._interval_due(site, state, payload.at):
                        trigger(site, "interval" if state.last_plan_at else "start", payload.at)
                continue
            site_id = payload.site
            if site_id not in self.sites:
                continue  # a site of another deployment, or one removed from ems.yaml
            state = states.setdefault(site_id, SiteState(site=site_id))
            changed.add(site_id)
            if isinstance(payload, ForecastPublished):
                if payload.quantity == "price":
                    state.take_price(payload)
                    state.advance(payload.issued_at)
                    trigger(site_id, "forecast", payload.issued_at)
            elif isinstance(payload, SetStrategy):
                state.mode = payload.mode
                if payload.mode == "manual":
                    state.strategy, state.announced_mode = payload.strategy, "manual"
                    out.emits.append(self._emit(PLANS.name, StrategySelected(
                        site=site_id, strategy=payload.strategy, mode="manual",
                        selected_at=payload.requested_at, selector="manual",
                        reason=f"set by {payload.requested_by}"), payload.requested_at))
                at = datetime.fromisoformat(state.clock) if state.clock else payload.requested_at
                trigger(site_id, "strategy", at)
            elif isinstance(payload, TelemetryReceived) and payload.soc_pct is not None:
                state.soc_pct, state.soc_time = payload.soc_pct, payload.device_time.isoformat()
                site = self.sites[site_id]
                if soc_deviates(state, payload.soc_pct, payload.device_time,
                                site.soc_deviation_pct):
                    trigger(site_id, "soc_deviation", payload.device_time)
        for site_id, (why, at) in sorted(triggers.items()):
            if site_id in self.sites:
                self._plan(states[site_id], self.sites[site_id], why, at, out)
        for site_id in changed:
            out.state[site_id.encode()] = orjson.dumps(states[site_id].to_dict())

    def _interval_due(self, site_id: str, state: SiteState, at: datetime) -> bool:
        site = self.sites.get(site_id)
        if site is None or not state.price_p50:
            return False
        if state.last_plan_at is None:
            return True
        since = (at - datetime.fromisoformat(state.last_plan_at)).total_seconds()
        return since >= site.optimisation_interval_s

    # --- planning ----------------------------------------------------------------------
    def _plan(self, state: SiteState, site: SiteConfig, why: str, now: datetime,
              out: Output) -> None:
        origin = floor_time(now, site.step_s)
        steps = site.horizon_s // site.step_s
        prices = price_curve(state, origin, steps, site.step_s)
        if prices is None:
            return
        load, pv = self._site_forecasts(site, origin, why, now, out)
        inputs = DispatchInputs(start=origin, step_s=site.step_s, price_eur_mwh=prices,
                                load_kw=load, pv_kw=pv, soc_initial_pct=self._soc0(state, site))
        dispatcher = self.dispatchers.get(site.site_id)
        if dispatcher is None:
            dispatcher = self.dispatchers[site.site_id] = Dispatcher(site)
        mode = state.mode or site.selection_mode
        started = time.perf_counter()
        try:
            if mode == "auto":
                plan = self._auto(state, site, dispatcher, inputs, now, out)
            else:
                state.strategy = state.strategy or site.manual_strategy
                plan = dispatcher.plan(state.strategy, inputs)
        except DispatchError as exc:
            log.warning("no plan", site=site.site_id, trigger=why, error=str(exc))
            out.emits.append(self._emit(PLANS.name, DispatchFailed(
                site=site.site_id, failed_at=now, trigger=why,  # type: ignore[arg-type]
                strategy=state.strategy if mode == "manual" else None,
                reason=getattr(exc, "reason", "error"), detail=str(exc)), now))
            return
        solve_time = time.perf_counter() - started
        EMS_SOLVE.labels(site.site_id).observe(solve_time)
        self._publish_plan(state, site, plan, why, mode, now, solve_time, out)

    def _soc0(self, state: SiteState, site: SiteConfig) -> float:
        """Initial SoC: the latest reading, clamped into the optimiser's SoC window."""
        b = site.battery
        soc = state.soc_pct
        if soc is None:
            soc = state.plan_soc[0] if state.plan_soc else (b.soc_min_pct + b.soc_max_pct) / 2
        return min(max(soc, b.soc_min_pct), b.soc_max_pct)

    def _site_forecasts(self, site: SiteConfig, origin: datetime, why: str, now: datetime,
                        out: Output) -> tuple[np.ndarray, np.ndarray]:
        """Load (from the site's profile history) and PV (clear sky, reduced by the cloud
        cover of the site's weather file when it has one) over the horizon, kW; published as
        forecasts when the price forecast is new."""
        steps = site.horizon_s // site.step_s
        load = pv = np.zeros(steps)
        results: list[Forecast] = []
        history = profile_history(site, "load_kw", origin, self.load_history_days)
        if not history.empty:
            options = ForecastOptions(horizon_s=site.horizon_s, step_s=site.step_s,
                                      prophet=False, training_days=self.load_history_days)
            result = best(forecast(history, quantity="load", unit="kW", origin=origin,
                                   options=options))
            load = np.clip(result.p50, 0, None)
            results.append(result)
        if site.pv_peak_kw > 0:
            result = clear_sky_pv(latitude=site.latitude, longitude=site.longitude,
                                  capacity_kw=site.pv_peak_kw, origin=origin,
                                  horizon_s=site.horizon_s, step_s=site.step_s,
                                  cloud_cover_pct=weather_cover(site, origin, site.horizon_s))
            pv = result.p50
            results.append(result)
        if why in ("forecast", "start"):
            for r in results:
                out.emits.append(self._emit(FORECASTS.name, _forecast_event(r, site, now), now))
        return load, pv

    def _selector(self, state: SiteState, site: SiteConfig) -> MlSelector:
        """The site's ML selector, trained on the labelled history in its state; refitted
        every `ML_REFIT` new samples (the forest refits lazily after `observe`)."""
        ml = self.selectors.get(site.site_id)
        if ml is None or len(state.ml_y) - ml.samples >= ML_REFIT or ml.samples > len(state.ml_y):
            ml = MlSelector(min_samples=site.ml_min_samples,
                            max_samples=max(site.ml_min_samples, ML_HISTORY))
            for x, y in zip(state.ml_x, state.ml_y, strict=True):
                ml.observe(x, y)
            self.selectors[site.site_id] = ml
        return ml

    def _auto(self, state: SiteState, site: SiteConfig, dispatcher: Dispatcher,
              inputs: DispatchInputs, now: datetime, out: Output) -> Plan:
        plans = dispatcher.plan_all(inputs)
        scores = score(plans, site)
        ml = self._selector(state, site)
        features = ml.features(inputs, site)
        predicted = ml.predict(features) if site.ml_selection and ml.ready else None
        if predicted is not None and predicted in plans:
            strategy, reason, selector = predicted, (
                f"random forest on {ml.samples} labelled plans"), "ml"
        else:
            strategy, reason = select_strategy(state.strategy, scores, site.switch_threshold)
            selector = "score"
        state.remember(features, max(scores, key=lambda k: scores[k]))
        if strategy != state.strategy or state.announced_mode != "auto":
            out.emits.append(self._emit(PLANS.name, StrategySelected(
                site=site.site_id, strategy=strategy, mode="auto", selected_at=now,
                reason=reason, selector=selector, scores=scores), now))  # type: ignore[arg-type]
            state.strategy, state.announced_mode = strategy, "auto"
        return plans[strategy]

    def _publish_plan(self, state: SiteState, site: SiteConfig, plan: Plan, why: str, mode: str,
                      now: datetime, solve_time: float, out: Output) -> None:
        power = plan.power_kw
        plan_id = uuid.uuid5(PLAN_NAMESPACE, f"{site.site_id}|{now.isoformat()}|{why}")
        steps = tuple(
            PlanStep(start=plan.start + timedelta(seconds=i * plan.step_s),
                     power_kw=float(power[i]), charge_kw=float(plan.charge_kw[i]),
                     discharge_kw=float(plan.discharge_kw[i]), soc_pct=float(plan.soc_pct[i]),
                     price_eur_mwh=float(plan.price_eur_mwh[i]), grid_kw=float(plan.grid_kw[i]),
                     load_kw=float(plan.load_kw[i]), pv_kw=float(plan.pv_kw[i]))
            for i in range(len(power)))
        event = DispatchPlanned(
            site=site.site_id, plan_id=str(plan_id), planned_at=now, trigger=why,  # type: ignore[arg-type]
            strategy=plan.strategy, selection_mode=mode,  # type: ignore[arg-type]
            solver=plan.solver, status=plan.status, solve_time_s=solve_time,
            step_s=plan.step_s, soc_initial_pct=self._soc0(state, site),
            expected_profit_eur=plan.expected_profit_eur, objective_eur=plan.objective_eur,
            degradation_cost_eur=plan.degradation_cost_eur, steps=steps)
        out.emits.append(self._emit(PLANS.name, event, now))
        setpoint_mw = float(power[0]) / 1000.0
        out.emits.append(self._emit(SETPOINTS.name, SetpointIssued(
            site=site.site_id, active_power_mw=setpoint_mw, issued_at=now,
            issued_by="dispatch"), now))
        state.last_plan_at = now.isoformat()
        state.plan_start, state.plan_step_s = plan.start.isoformat(), plan.step_s
        state.plan_soc = [float(v) for v in plan.soc_pct]
        EMS_PLANS.labels(site.site_id, plan.strategy, why).inc()
        EMS_PROFIT.labels(site.site_id).set(plan.expected_profit_eur)
        EMS_SETPOINT.labels(site.site_id).set(setpoint_mw)
        if site.auto_trading:
            self._trade(state, site, plan, now, out)

    def _trade(self, state: SiteState, site: SiteConfig, plan: Plan, now: datetime,
               out: Output) -> None:
        """Order the first delivery period still open for trading (gate closure ahead)."""
        power = plan.power_kw
        for i in range(len(power)):
            start = plan.start + timedelta(seconds=i * plan.step_s)
            if (start - now).total_seconds() >= GATE_CLOSURE_S:
                break
        else:
            return
        key = start.isoformat()
        ordered = state.orders.get(key, 0.0)
        planned = float(power[i]) * plan.step_s / 3600.0 / 1000.0
        order = order_for(site=site.site_id, account=site.site_id, market=site.trading_market,
                          delivery_start=start, step_s=plan.step_s, planned_mwh=planned,
                          ordered_mwh=ordered, price_eur_mwh=float(plan.price_eur_mwh[i]),
                          tolerance_eur_mwh=self.tolerance, now=now)
        if order is not None:
            signed = float(order.quantity_mwh) * (1 if order.side == "SELL" else -1)
            state.orders[key] = ordered + signed
            out.emits.append(self._emit(ORDER_COMMANDS_TOPIC.name, order, now))
        state.orders = {k: v for k, v in state.orders.items()
                        if datetime.fromisoformat(k) >= now - timedelta(days=1)}

    @staticmethod
    def _emit(topic: str, payload: Any, at: datetime) -> Emit:
        return Emit.envelope(topic, new_envelope(payload, occurred_at=at, source=SOURCE))


def _forecast_event(result: Forecast, site: SiteConfig, now: datetime) -> ForecastPublished:
    points = tuple(ForecastPoint(start=t.to_pydatetime(), p10=float(result.p10[i]),
                                 p50=float(result.p50[i]), p90=float(result.p90[i]))
                   for i, t in enumerate(result.index))
    return ForecastPublished(
        site=site.site_id, quantity=result.quantity, unit=result.unit,  # type: ignore[arg-type]
        model=result.model, issued_at=now, step_s=result.step_s,
        training_start=result.training_start, training_end=result.training_end, points=points)


def create_runtime(settings: Settings) -> Runtime:
    processor = DispatchProcessor(read_sites(settings.ems_file),
                                  order_tolerance_eur_mwh=settings.ems_order_tolerance_eur_mwh)
    return Runtime(processor, settings.bootstrap)
