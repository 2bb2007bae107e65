"""domain.risk.config: Policy.from_dict, its defaults and its validation errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.risk import Policy, PolicyError, SiteLimits

POLICY_FILE = Path(__file__).resolve().parents[2] / "policy" / "policy.yaml"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 7,
        "per_market_rps": {"EPEX_AT_INTRADAY_15MIN": 120},
        "sites": {"site-1": {"capacity_mwh": 2, "max_power_mw": 1}},
    }
    base.update(overrides)
    return base


def site(**fields: Any) -> dict[str, Any]:
    return doc(sites={"site-1": {"capacity_mwh": 2, "max_power_mw": 1, **fields}})


def test_the_shipped_policy_file_is_valid() -> None:
    policy = Policy.from_dict(yaml.safe_load(POLICY_FILE.read_text()))
    assert policy.per_market_rps == {"EPEX_AT_INTRADAY_15MIN": 120, "EPEX_DE_INTRADAY_15MIN": 120}
    s1 = policy.site("site-1")
    assert s1 is not None
    assert (s1.capacity_mwh, s1.max_power_mw) == (Decimal(4), Decimal(2))
    assert (s1.soc_min_pct, s1.soc_max_pct) == (Decimal(15), Decimal(90))
    assert s1.charge_efficiency == Decimal("0.95")
    assert (s1.temperature_throttle_c, s1.temperature_halt_c) == (Decimal(40), Decimal(45))


def test_defaults_follow_seed_000() -> None:
    limits = Policy.from_dict(doc()).sites["site-1"]
    assert limits == SiteLimits(capacity_mwh=Decimal(2), max_power_mw=Decimal(1))
    assert (limits.soc_min_pct, limits.soc_max_pct) == (Decimal(15), Decimal(90))
    assert limits.max_telemetry_age_s == 300
    assert limits.market_position_limit_mwh is None and limits.site_position_limit_mwh is None


def test_rates_are_per_minute_with_a_default_for_unlisted_markets() -> None:
    policy = Policy.from_dict(doc(default_orders_per_minute=30))
    assert policy.orders_per_minute("EPEX_AT_INTRADAY_15MIN") == 120
    assert policy.orders_per_minute("NORD_POOL") == 30
    assert Policy.from_dict(doc()).orders_per_minute("NORD_POOL") == 60


def test_site_entries_override_the_shared_limits() -> None:
    policy = Policy.from_dict(doc(
        limits={"soc_min_pct": 10, "charge_efficiency": 0.9, "market_position_limit_mwh": 5},
        sites={"a": {"capacity_mwh": 2, "max_power_mw": 1},
               "b": {"capacity_mwh": 4, "max_power_mw": 2, "soc_min_pct": 20,
                     "market_position_limits_mwh": {"M1": 1.5}}}))
    a, b = policy.sites["a"], policy.sites["b"]
    assert (a.soc_min_pct, b.soc_min_pct) == (Decimal(10), Decimal(20))
    assert a.charge_efficiency == b.charge_efficiency == Decimal("0.9")  # float 0.9 kept exact
    assert b.position_limit_mwh("M1") == Decimal("1.5")
    assert b.position_limit_mwh("M2") == a.position_limit_mwh("M1") == 5
    assert policy.site("c") is None


def test_a_position_limit_may_be_null() -> None:
    policy = Policy.from_dict(doc(limits={"site_position_limit_mwh": None}))
    assert policy.sites["site-1"].site_position_limit_mwh is None


@pytest.mark.parametrize(("data", "message"), [
    ({"version": 7, "per_market_rps": {}}, "sites: required"),
    (doc(sites={}), "sites: at least one site"),
    (doc(per_market_rps=[120]), "per_market_rps: expected a mapping"),
    (doc(per_market_rpm={}), "policy: unknown key(s) per_market_rpm"),
    (doc(version="7"), "version: expected an integer"),
    (doc(per_market_rps={"M": 0}), "per_market_rps.M: must be >= 1"),
    (doc(per_market_rps={"M": 1.5}), "per_market_rps.M: expected an integer"),
    (doc(per_market_rps={"M": True}), "per_market_rps.M: expected an integer"),
    (doc(default_orders_per_minute=0), "default_orders_per_minute: must be >= 1"),
    (doc(sites={"s": {"max_power_mw": 1}}), "sites.s.capacity_mwh: required"),
    (doc(sites={"s": {"capacity_mwh": 2}}), "sites.s.max_power_mw: required"),
    (doc(sites={"s": None}), "sites.s: required"),
    (site(capacity_mwh=0), "sites.site-1.capacity_mwh: must be > 0"),
    (site(max_power_mw=-1), "sites.site-1.max_power_mw: must be > 0"),
    (site(soc_min_pct=90), "sites.site-1.soc_min_pct: need 0 <= soc_min_pct < soc_max_pct"),
    (site(soc_max_pct=101), "sites.site-1.soc_min_pct: need 0 <= soc_min_pct < soc_max_pct"),
    (site(soc_min_pct=-1), "sites.site-1.soc_min_pct: need 0 <= soc_min_pct < soc_max_pct"),
    (site(charge_efficiency=0), "sites.site-1.charge_efficiency: must be in (0, 1]"),
    (site(discharge_efficiency=1.01), "sites.site-1.discharge_efficiency: must be in (0, 1]"),
    (site(max_telemetry_age_s=0), "sites.site-1.max_telemetry_age_s: must be > 0"),
    (site(temperature_throttle_c=46), "sites.site-1.temperature_throttle_c: must be <="),
    (site(site_position_limit_mwh=0), "sites.site-1.site_position_limit_mwh: must be > 0"),
    (site(market_position_limits_mwh={"M": 0}),
     "sites.site-1.market_position_limits_mwh.M: must be > 0"),
    (site(capacity_mwh="two"), "sites.site-1.capacity_mwh: expected a number"),
    (site(capacity_mwh=True), "sites.site-1.capacity_mwh: expected a number"),
    (site(capacity_mwh=float("nan")), "sites.site-1.capacity_mwh: must be finite"),
    (site(capacity_mwh=None), "sites.site-1.capacity_mwh: expected a number"),
    (site(capacity=2), "sites.site-1: unknown key(s) capacity"),
    (doc(limits={"soc_min": 15}), "sites.site-1: unknown key(s) soc_min"),
])
def test_invalid_documents_are_rejected_with_the_field_named(data: Any, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data)
    assert message in str(info.value)


def test_a_non_mapping_document_is_rejected() -> None:
    with pytest.raises(PolicyError, match="expected a mapping"):
        Policy.from_dict([])  # type: ignore[arg-type]
