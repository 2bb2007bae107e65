"""domain.dispatch.load_ems_config (policy/ems.yaml, the seed 003 single-site file, the seed 004
multi-site file, clear errors) and the multi-site aggregate."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.dispatch import (
    EmsConfigError,
    FeedInLimit,
    SiteState,
    TimeWindow,
    aggregate,
    export_limit_kw,
    load_ems_config,
)

ROOT = Path(__file__).resolve().parents[2]

SEED_003 = """
bess:
  efficiency_charge: 0.95
  efficiency_discharge: 0.95
  energy_capacity_kwh: 200.0
  power_charge_max_kw: 100.0
  power_discharge_max_kw: 100.0
  soc_max_percent: 90.0
  soc_min_percent: 10.0

ems:
  mode: auto
  optimization_interval_minutes: 15
  timestep_s: 2

strategies:
  selection_mode: auto
  manual_strategy: arbitrage
  switch_threshold: 0.15

prices:
  demo_mode: true
  provider: awattar
  region: AT

mqtt:
  enabled: true
  broker_host: localhost
  broker_port: 1883

modbus:
  enabled: false
  connection_type: tcp
  host: localhost
  port: 502
"""

SEED_004 = """
sites:
  default_site_id: 1
  sites:
    1:
      name: "Standort Wien"
      location:
        city: "Wien"
        latitude: 48.2082
        longitude: 16.3738
      bess:
        energy_capacity_kwh: 200.0
        power_charge_max_kw: 100.0
        power_discharge_max_kw: 100.0
        efficiency_charge: 0.95
        efficiency_discharge: 0.95
      modbus:
        enabled: true
        connection_type: tcp
        host: "192.168.1.100"
        port: 502
        profile: hithium_ess_5016
      mqtt:
        enabled: true
        broker: "mqtt.wien.local"
        topics:
          telemetry: "phoenyra/site1/telemetry"
          commands: "phoenyra/site1/commands"
      forecast:
        pv_peak_power_kw: 50.0
        latitude: 48.2082
        longitude: 16.3738
      grid_connection:
        max_power_kw: 30.0
      feedin_limitation:
        enabled: true
        mode: fixed
        fixed_limit_pct: 70.0
    2:
      name: "Standort Linz"
      location:
        city: "Linz"
        latitude: 48.3069
        longitude: 14.2858
      bess:
        energy_capacity_kwh: 300.0
        power_charge_max_kw: 150.0
        power_discharge_max_kw: 150.0
        efficiency_charge: 0.95
        efficiency_discharge: 0.95
      forecast:
        pv_peak_power_kw: 75.0
        latitude: 48.3069
        longitude: 14.2858
      grid_connection:
        max_power_kw: 50.0
      feedin_limitation:
        enabled: true
        mode: dynamic
        dynamic_rules:
          - time: "06:00-18:00"
            limit_pct: 70.0
          - time: "18:00-22:00"
            limit_pct: 50.0
"""


def shipped() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "policy" / "ems.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_shipped_ems_yaml_is_the_default_site_of_bess_up() -> None:
    [site] = load_ems_config(shipped())
    assert site.site_id == "site-1" and site.name == "Standort Wien"
    assert (site.price_market, site.trading_market, site.bidding_zone) == (
        "EPEX_AT_DAY_AHEAD_60MIN", "EPEX_AT_INTRADAY_15MIN", "AT")
    assert (site.latitude, site.longitude, site.timezone) == (48.2082, 16.3738, "Europe/Vienna")
    b = site.battery
    assert (b.capacity_kwh, b.power_charge_max_kw, b.power_discharge_max_kw) == (4000, 2000, 2000)
    assert (b.efficiency_charge, b.efficiency_discharge) == (0.95, 0.95)
    assert (b.soc_min_pct, b.soc_max_pct, b.soc_terminal_pct) == (15, 90, None)
    assert b.degradation_cost_eur_mwh == 5.0
    assert site.pv_peak_kw == 1000
    assert (site.load_profile, site.load_scale) == ("household_residential4_hourly.csv", 100)
    assert (site.grid_import_max_kw, site.grid_export_max_kw) == (2500, 2500)
    assert site.feed_in == FeedInLimit()
    assert site.tariff.import_fee_eur_mwh == 30 and site.tariff.demand_charge_eur_kw == 0.1
    assert (site.selection_mode, site.manual_strategy, site.switch_threshold) == (
        "auto", "arbitrage", 0.15)
    assert site.auto_trading is True
    assert (site.optimisation_interval_s, site.horizon_s, site.step_s) == (900, 86400, 900)
    assert site.steps == 96 and site.soc_deviation_pct == 5.0
    assert site.ml_selection and site.ml_min_samples == 100
    assert (ROOT / "data" / site.load_profile).exists()


def test_the_predecessor_single_site_file_keeps_working() -> None:
    [site] = load_ems_config(yaml.safe_load(SEED_003))
    assert site.site_id == "site-1"
    assert site.bidding_zone == "AT" and site.price_market == "EPEX_AT_DAY_AHEAD_60MIN"
    assert site.trading_market == "EPEX_AT_INTRADAY_15MIN"
    b = site.battery
    assert (b.capacity_kwh, b.power_charge_max_kw, b.power_discharge_max_kw) == (200, 100, 100)
    assert (b.soc_min_pct, b.soc_max_pct) == (10, 90)
    assert b.degradation_cost_eur_mwh == 5.0  # on by default
    assert (site.selection_mode, site.manual_strategy, site.switch_threshold) == (
        "auto", "arbitrage", 0.15)
    assert site.optimisation_interval_s == 900
    assert site.grid_import_max_kw is None and site.feed_in.mode == "none"


def test_the_seed_004_multi_site_file() -> None:
    wien, linz = load_ems_config(yaml.safe_load(SEED_004))
    assert (wien.site_id, wien.name, linz.site_id, linz.name) == (
        "1", "Standort Wien", "2", "Standort Linz")
    assert (wien.battery.capacity_kwh, linz.battery.capacity_kwh) == (200, 300)
    assert (wien.pv_peak_kw, linz.pv_peak_kw) == (50, 75)
    assert (wien.grid_import_max_kw, wien.grid_export_max_kw) == (30, 30)
    assert (linz.latitude, linz.longitude) == (48.3069, 14.2858)
    assert wien.feed_in == FeedInLimit("fixed", fixed_limit_pct=70.0)
    assert linz.feed_in.mode == "dynamic"
    assert [r.window for r in linz.feed_in.rules] == [TimeWindow(360, 1080),
                                                      TimeWindow(1080, 1320)]
    # the rules in local time (Vienna, UTC+2 in summer): 70 % of 75 kW 06-18, 50 % 18-22
    limits = export_limit_kw(replace(linz, grid_export_max_kw=None),
                             datetime(2024, 6, 1, 0, tzinfo=UTC), 3600, 24)
    assert limits[3] == math.inf  # 05:00 local: no limit
    assert limits[4] == pytest.approx(52.5)  # 06:00 local: 70 % of 75 kW
    assert limits[15] == pytest.approx(52.5)
    assert limits[16] == pytest.approx(37.5)  # 18:00 local: 50 % of 75 kW
    assert limits[20] == math.inf  # 22:00 local
    with_connection = export_limit_kw(linz, datetime(2024, 6, 1, 0, tzinfo=UTC), 3600, 24)
    assert (with_connection[3], with_connection[4], with_connection[16]) == (50, 50, 37.5)


def test_the_seed_004_default_site_comes_first() -> None:
    data = yaml.safe_load(SEED_004)
    data["sites"]["default_site_id"] = 2
    assert [s.site_id for s in load_ems_config(data)] == ["2", "1"]


def test_defaults_are_merged_under_every_site() -> None:
    data = shipped()
    data["sites"].append({"site_id": "site-2", "name": "Linz",
                          "bess": {"energy_capacity_kwh": 300, "power_charge_max_kw": 150,
                                   "power_discharge_max_kw": 150},
                          "strategies": {"manual_strategy": "peak_shaving",
                                         "selection_mode": "manual"}})
    one, two = load_ems_config(data)
    assert two.site_id == "site-2" and two.battery.capacity_kwh == 300
    assert (two.selection_mode, two.manual_strategy, two.switch_threshold) == (
        "manual", "peak_shaving", 0.15)
    assert two.optimisation_interval_s == 900 and not two.auto_trading
    assert one.auto_trading


def site0(data: dict[str, Any]) -> dict[str, Any]:
    return data["sites"][0]  # type: ignore[no-any-return]


def broken(edit: Any) -> str:
    data = copy.deepcopy(shipped())
    edit(data)
    with pytest.raises(EmsConfigError) as info:
        load_ems_config(data)
    return str(info.value)


def test_a_misspelt_key_is_named_with_its_path() -> None:
    message = broken(lambda d: site0(d)["bess"].update(energy_capacity_kwhh=1))
    assert "ems.yaml.sites[0].bess" in message and "'energy_capacity_kwhh'" in message
    assert "unknown key" in message
    assert "'colour'" in broken(lambda d: site0(d).update(colour="red"))
    assert "'versoin'" in broken(lambda d: d.update(versoin=1))
    assert "sites[0].grid_connection" in broken(
        lambda d: site0(d)["grid_connection"].update(import_max=3))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: site0(d)["bess"].pop("energy_capacity_kwh"),
     "sites[0].bess.energy_capacity_kwh: missing"),
    (lambda d: site0(d)["bess"].update(power_charge_max_kw="lots"),
     "sites[0].bess.power_charge_max_kw: expected a number"),
    (lambda d: site0(d)["bess"].update(efficiency_charge=1.5), "efficiency_charge"),
    (lambda d: site0(d)["bess"].update(soc_min_percent=95), "soc_min_pct"),
    (lambda d: site0(d).update(strategies={"manual_strategy": "moonshot"}), "manual_strategy"),
    (lambda d: site0(d).update(strategies={"selection_mode": "sometimes"}), "selection_mode"),
    (lambda d: site0(d).update(strategies={"auto_trading": "yes"}),
     "strategies.auto_trading: expected true or false"),
    (lambda d: site0(d).update(feedin_limitation={"mode": "dynamic",
                                                  "dynamic_rules": [{"time": "6-18"}]}),
     "feedin_limitation.dynamic_rules[0].time"),
    (lambda d: site0(d).update(feedin_limitation={"mode": "dynamic"}), "at least one rule"),
    (lambda d: site0(d).update(feedin_limitation={"mode": "sometimes"}), "mode"),
    (lambda d: site0(d)["grid_tariffs"].update(import_fee_eur_mwh=-5), "import_fee_eur_mwh"),
    (lambda d: site0(d)["location"].update(timezone="Mars/Olympus"), "Mars/Olympus"),
    (lambda d: d["defaults"]["ems"].update(step_s=700), "multiple of step_s"),
    (lambda d: d["sites"].append(copy.deepcopy(d["sites"][0])), "appears twice"),
    (lambda d: d.update(sites=[]), "no sites"),
    (lambda d: d.update(sites="site-1"), "expected a list"),
    (lambda d: d.update(bess={}), "not both"),
    (lambda d: site0(d).pop("bess"), "sites[0].bess: missing"),
])
def test_bad_values_give_a_clear_error(edit: Any, expected: str) -> None:
    assert expected in broken(edit)


def test_an_empty_or_wrong_document() -> None:
    with pytest.raises(EmsConfigError, match="'sites' list"):
        load_ems_config({})
    with pytest.raises(EmsConfigError, match="expected a mapping"):
        load_ems_config([])  # type: ignore[arg-type]
    with pytest.raises(EmsConfigError):  # a ValueError, as Policy.from_dict raises
        load_ems_config({"bess": {"energy_capacity_kwh": 0, "power_charge_max_kw": 1,
                                  "power_discharge_max_kw": 1}})
    assert issubclass(EmsConfigError, ValueError)


def test_aggregate_totals_and_capacity_weighted_soc() -> None:
    view = aggregate([
        SiteState("a", capacity_kwh=200, soc_pct=50, power_kw=80, pv_kw=10, load_kw=30,
                  grid_kw=-60),
        SiteState("b", capacity_kwh=600, soc_pct=90, power_kw=-100, pv_kw=0, load_kw=20,
                  grid_kw=120),
    ])
    assert view.site_count == 2
    assert (view.total_power_kw, view.total_pv_kw, view.total_load_kw, view.total_grid_kw) == (
        -20, 10, 50, 60)
    assert view.total_capacity_kwh == 800 and view.stored_energy_kwh == pytest.approx(640)
    assert view.mean_soc_pct == pytest.approx(80.0)  # not the plain mean (70)
    assert aggregate([]).mean_soc_pct == 0.0 and aggregate([]).site_count == 0


def test_the_seed_004_strategy_section_next_to_the_seed_003_one() -> None:
    data = yaml.safe_load(SEED_003)
    data["strategy"] = {"selection_mode": "auto",
                        "ai_selection": {"enabled": True, "training_data_days": 30,
                                         "retrain_interval_days": 7, "min_samples": 150}}
    [site] = load_ems_config(data)
    assert site.ml_selection and site.ml_min_samples == 150
    assert site.switch_threshold == 0.15
