"""domain.telemetry: units, ranges, ordering/dedup, staleness, aggregation, battery physics."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.telemetry.aggregation import (
    SensorValue,
    aggregate,
    methods_from,
    reject_outliers,
    weights_from,
)
from domain.telemetry.battery import BatteryParams, BatteryState, step
from domain.telemetry.state import (
    AUTOMATIC,
    MANUAL,
    DeviceState,
    classify,
    evolve,
    fold,
    is_stale,
    source_label,
)
from domain.telemetry.units import UnitError, denormalise, normalise
from domain.telemetry.validation import Limits
from schemas.telemetry import TelemetryReceived

T0 = datetime(2025, 1, 25, 20, 30, tzinfo=UTC)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def reading(t: int, device: str = "d1", **values: float) -> TelemetryReceived:
    at = T0 + timedelta(seconds=t)
    return TelemetryReceived(site="s1", device_id=device, source="mqtt", device_time=at,
                             received_at=at, **values)


# --- units -------------------------------------------------------------------------------------

def test_units_of_the_predecessor() -> None:
    assert normalise("active_power_mw", 2500, "kW") == 2.5
    assert normalise("active_power_mw", 2.5, "MW") == 2.5
    assert normalise("active_power_mw", 2_500_000, "W") == pytest.approx(2.5)
    assert normalise("soc_pct", 75.5, "%") == 75.5
    assert normalise("soc_pct", 0.755, "ratio") == pytest.approx(75.5)
    assert normalise("temperature_c", 28.3, "°C") == 28.3
    assert normalise("temperature_c", 301.45, "K") == pytest.approx(28.3)
    assert normalise("temperature_c", 28.3, None) == 28.3
    with pytest.raises(UnitError, match="does not fit temperature_c"):
        normalise("temperature_c", 1, "kW")
    with pytest.raises(UnitError, match="unknown quantity"):
        normalise("humidity", 1, "%")


@given(value=finite, unit=st.sampled_from(["W", "kW", "MW", "GW"]))
def test_power_units_invert(value: float, unit: str) -> None:
    assert denormalise("active_power_mw", normalise("active_power_mw", value, unit),
                       unit) == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_limits_name_the_problem() -> None:
    limits = Limits()
    assert limits.problems({"soc_pct": 75.0, "temperature_c": 28.3}) == []
    assert limits.problems({"soc_pct": 130.0}) == ["soc_pct=130 out of range [0, 100]"]
    assert "frequency_hz=5" in limits.problems({"frequency_hz": 5.0})[0]
    assert "not a finite" in limits.problems({"temperature_c": float("nan")})[0]


# --- ordering, duplicates, staleness -----------------------------------------------------------

def test_duplicate_and_out_of_order_do_not_change_state() -> None:
    s = evolve(DeviceState(), reading(10, soc_pct=50.0))
    assert classify(s, reading(10, soc_pct=50.0)) == "duplicate"
    assert classify(s, reading(5, soc_pct=40.0)) == "out_of_order"
    assert classify(s, reading(5, soc_pct=40.0, temperature_c=20.0)) == "partly_applied"
    assert classify(s, reading(11, soc_pct=51.0)) == "applied"
    s2 = evolve(s, reading(5, soc_pct=40.0))
    assert s2.values["soc_pct"].value == 50.0
    s3 = evolve(s2, reading(5, soc_pct=40.0, temperature_c=20.0))
    assert s3.values["soc_pct"].value == 50.0 and s3.values["temperature_c"].value == 20.0


@settings(max_examples=200)
@given(times=st.lists(st.integers(0, 50), min_size=1, max_size=30, unique=True),
       seed=st.integers())
def test_state_is_the_newest_reading_whatever_the_arrival_order(times: list[int],
                                                                seed: int) -> None:
    readings = [reading(t, soc_pct=t % 100, temperature_c=float(t)) for t in times]
    shuffled = readings[:]
    random.Random(seed).shuffle(shuffled)
    state = fold(shuffled + shuffled[: len(shuffled) // 2])[("s1", "d1")]  # with repeats
    newest = max(times)
    assert state.values["soc_pct"].value == newest % 100
    assert state.values["temperature_c"].device_time == T0 + timedelta(seconds=newest)
    assert state.last_time == T0 + timedelta(seconds=newest)


def test_staleness_and_source_labels() -> None:
    assert is_stale(None, T0, 30)
    assert not is_stale(T0, T0 + timedelta(seconds=30), 30)
    assert is_stale(T0, T0 + timedelta(seconds=31), 30)
    assert source_label("manual") == MANUAL == "manual input"
    assert {source_label(s) for s in ("modbus", "mqtt", "rest")} == {AUTOMATIC}


# --- aggregation -------------------------------------------------------------------------------

def test_aggregation_methods_and_outliers() -> None:
    temps = [SensorValue("room", 30.0, 1.5), SensorValue("pcs", 25.0, 1.0)]
    assert aggregate(temps, "mean") == 27.5
    assert aggregate(temps, "weighted_mean") == pytest.approx((45 + 25) / 2.5)
    assert aggregate(temps, "max") == 30.0 and aggregate(temps, "min") == 25.0
    assert aggregate(temps, "sum") == 55.0
    assert aggregate([], "mean") is None
    broken = [*temps, SensorValue("t3", 27.0), SensorValue("broken", 900.0)]
    assert [v.sensor_id for v in reject_outliers(broken)] == ["room", "pcs", "t3"]
    assert aggregate(broken, "max") == 30.0
    assert aggregate(broken, "max", outlier_threshold=None) == 900.0
    assert methods_from("temperature_c=max")["temperature_c"] == "max"
    assert methods_from("")["active_power_mw"] == "sum"
    with pytest.raises(ValueError, match="unknown aggregation method"):
        methods_from("soc_pct=avg")
    assert weights_from("a=1.5, b=2") == {"a": 1.5, "b": 2.0}


@given(values=st.lists(st.floats(-100, 100), min_size=1, max_size=20),
       method=st.sampled_from(["mean", "weighted_mean", "max", "min", "median"]))
def test_aggregate_lies_within_the_sensors(values: list[float], method: str) -> None:
    sensors = [SensorValue(str(i), v, 1.0 + i % 3) for i, v in enumerate(values)]
    result = aggregate(sensors, method)  # type: ignore[arg-type]
    assert result is not None
    assert min(values) - 1e-9 <= result <= max(values) + 1e-9


# --- battery physics ---------------------------------------------------------------------------

@settings(max_examples=200)
@given(setpoints=st.lists(st.tuples(st.floats(-10, 10), st.floats(0.01, 3600)), max_size=40),
       soc=st.floats(5, 95))
def test_soc_stays_within_limits(setpoints: list[tuple[float, float]], soc: float) -> None:
    params = BatteryParams()
    state = BatteryState(soc_pct=soc)
    for setpoint, dt in setpoints:
        before = state.soc_pct
        state = step(BatteryState(**{**state.__dict__, "setpoint_mw": setpoint}), params, dt)
        assert params.soc_min_pct - 1e-9 <= state.soc_pct <= params.soc_max_pct + 1e-9
        assert -params.max_charge_mw <= state.power_mw <= params.max_discharge_mw
        if state.power_mw > 1e-6:
            assert state.soc_pct < before
        elif state.power_mw < -1e-6:
            assert state.soc_pct > before


def test_efficiency_and_heating() -> None:
    params = BatteryParams(capacity_mwh=4.0, eta_charge=0.9, eta_discharge=0.9)
    charged = step(BatteryState(soc_pct=50.0, setpoint_mw=-2.0, temperature_c=25.0), params, 360)
    # 2 MW for 0.1 h = 0.2 MWh from the grid, 0.18 MWh stored = 4.5 % of 4 MWh
    assert charged.soc_pct == pytest.approx(54.5)
    assert charged.power_mw == -2.0
    assert charged.temperature_c > 25.0
    discharged = step(BatteryState(soc_pct=50.0, setpoint_mw=2.0), params, 360)
    assert discharged.soc_pct == pytest.approx(50.0 - 0.2 / 0.9 / 4.0 * 100)
    empty = step(BatteryState(soc_pct=6.0, setpoint_mw=2.0), params, 3600)
    assert empty.soc_pct == pytest.approx(params.soc_min_pct)
    assert 0 < empty.power_mw < 2.0


@settings(max_examples=200)
@given(items=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["d1", "d2"]),
                                st.sampled_from(["soc_pct", "temperature_c", "both"]),
                                st.integers(0, 3)), max_size=40))
def test_tracker_gives_the_verdicts_of_classify_and_evolve(
        items: list[tuple[int, str, str, int]]) -> None:
    from domain.telemetry.state import Tracker

    tracker, states = Tracker(), {}
    for t, device, kind, v in items:
        values = ({"soc_pct": float(v), "temperature_c": float(v)} if kind == "both"
                  else {kind: float(v)})
        r = reading(t, device, **values)
        state = states.get(device, DeviceState())
        assert tracker.observe(r) == classify(state, r)
        states[device] = evolve(state, r)
