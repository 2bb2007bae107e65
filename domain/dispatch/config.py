"""``ems.yaml`` as a list of `SiteConfig` (seed 003 single-site file, seed 004 2.5 multi-site).

The domain reads no files: infrastructure parses the YAML and hands the mapping to
`load_ems_config`. Three shapes are accepted:

* multi-site (``policy/ems.yaml``): ``sites:`` a list of site sections, optional ``defaults:``
  (a site section deep-merged under every site) and ``version``;
* seed 004 2.5.2: ``sites: {default_site_id: 1, sites: {1: {...}, 2: {...}}}`` (the key is the
  site id unless the section has ``site_id``; the default site comes first);
* seed 003 (the predecessor's single-site file): top-level ``bess``, ``ems``, ``strategies``,
  ``prices``, ``mqtt``, ``modbus`` -> one site ``site-1``.

A site section has the predecessor's sub-sections: ``bess``, ``location``, ``markets``,
``forecast``, ``grid_connection``, ``feedin_limitation``, ``grid_tariffs``, ``ems``,
``strategies`` (or ``strategy``, seed 004 3.1); ``mqtt`` and ``modbus`` belong to the gateways
and are accepted but not read here. Unknown keys are errors that name the key and its path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from domain.dispatch.model import (
    DEFAULT_DEGRADATION_COST_EUR_MWH,
    Battery,
    FeedInLimit,
    FeedInRule,
    SiteConfig,
    Tariff,
    TimeWindow,
    TouRule,
)
from schemas.market import day_ahead_market

DEFAULT_SITE_ID = "site-1"
VIENNA = (48.2082, 16.3738)  # seed 004 2.5.2, "Standort Wien"
PASSIVE = frozenset({"mqtt", "modbus"})  # gateway settings: accepted, not read by the EMS


class EmsConfigError(ValueError):
    """The EMS configuration is invalid; the message names the offending key and its path."""


class _Section:
    """A mapping being read; remembers the keys it was asked for to report unknown ones."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise EmsConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
        self.data, self.path, self.seen = data, path, set[str]()

    def has(self, *keys: str) -> bool:
        return any(k in self.data for k in keys)

    def raw(self, *keys: str, default: Any = None) -> Any:
        """The value of the first of `keys` present (aliases); two of them is an error."""
        present = [k for k in keys if k in self.data]
        self.seen.update(keys)
        if len(present) > 1:
            raise EmsConfigError(f"{self.path}: give only one of {', '.join(present)}")
        return self.data[present[0]] if present else default

    def ignore(self, *keys: str) -> None:
        """Accept these keys without reading them."""
        self.seen.update(keys)

    def key_path(self, *keys: str) -> str:
        present = [k for k in keys if k in self.data] or list(keys[:1])
        return f"{self.path}.{present[0]}"

    def section(self, *keys: str) -> _Section:
        return _Section(self.raw(*keys, default={}) or {}, self.key_path(*keys))

    def number(self, *keys: str, default: float | None = None, required: bool = False,
               minimum: float | None = None) -> float | None:
        value = self.raw(*keys)
        if value is None:
            if required:
                raise EmsConfigError(f"{self.key_path(*keys)}: missing (a number)")
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise EmsConfigError(f"{self.key_path(*keys)}: expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise EmsConfigError(f"{self.key_path(*keys)}: must be >= {minimum}, got {value!r}")
        return float(value)

    def num(self, *keys: str, default: float, minimum: float | None = None) -> float:
        value = self.number(*keys, default=default, minimum=minimum)
        assert value is not None
        return value

    def text(self, *keys: str, default: str | None = None) -> str | None:
        value = self.raw(*keys)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise EmsConfigError(f"{self.key_path(*keys)}: expected a string, got {value!r}")
        return str(value)

    def flag(self, *keys: str, default: bool) -> bool:
        value = self.raw(*keys)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise EmsConfigError(f"{self.key_path(*keys)}: expected true or false, got "
                                 f"{value!r}")
        return value

    def items(self, *keys: str) -> list[_Section]:
        value = self.raw(*keys, default=[]) or []
        if not isinstance(value, list):
            raise EmsConfigError(f"{self.key_path(*keys)}: expected a list, got "
                                 f"{type(value).__name__}")
        return [_Section(v, f"{self.key_path(*keys)}[{i}]") for i, v in enumerate(value)]

    def done(self, ignore: frozenset[str] = frozenset()) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.seen | ignore)
        if unknown:
            known = ", ".join(sorted(self.seen | ignore))
            raise EmsConfigError(f"{self.path}: unknown key {unknown[0]!r} (known: {known})")


def load_ems_config(data: Mapping[str, Any]) -> list[SiteConfig]:
    """The sites of a parsed ``ems.yaml`` (any of the three shapes, see the module docstring).

    Raises EmsConfigError naming the bad key, e.g. ``ems.yaml: sites[0].bess.capacity_kwhh:
    unknown key``.
    """
    root = _Section(data, "ems.yaml")
    if root.has("sites"):
        if root.has("bess"):
            raise EmsConfigError("ems.yaml: give either sites (multi-site) or bess (single "
                                 "site), not both")
        sites = _multi_site(root)
    elif root.has("bess"):
        sites = [_site(root, DEFAULT_SITE_ID, ignore=PASSIVE | {"version"})]
    else:
        raise EmsConfigError("ems.yaml: expected a 'sites' list (multi-site) or a 'bess' "
                             "section (single site)")
    seen: set[str] = set()
    for site in sites:
        if site.site_id in seen:
            raise EmsConfigError(f"ems.yaml: site_id {site.site_id!r} appears twice")
        seen.add(site.site_id)
    return sites


def _multi_site(root: _Section) -> list[SiteConfig]:
    raw_sites = root.raw("sites")
    root.ignore("version")
    defaults = root.raw("defaults", default={}) or {}
    if not isinstance(defaults, Mapping):
        raise EmsConfigError("ems.yaml.defaults: expected a mapping")
    entries: list[tuple[str, Any, str]] = []  # (default id, section, path)
    if isinstance(raw_sites, list):
        root.ignore("default_site_id")
        for i, entry in enumerate(raw_sites):
            entries.append((f"site-{i + 1}", entry, f"ems.yaml.sites[{i}]"))
    elif isinstance(raw_sites, Mapping):  # seed 004: sites: {default_site_id, sites: {id: ...}}
        outer = _Section(raw_sites, "ems.yaml.sites")
        inner = outer.raw("sites", default={})
        first = outer.raw("default_site_id")
        outer.done()
        if not isinstance(inner, Mapping) or not inner:
            raise EmsConfigError("ems.yaml.sites.sites: expected a mapping of site id -> site")
        keys = sorted(inner, key=lambda k: (str(k) != str(first), str(k)))
        entries = [(str(k), inner[k], f"ems.yaml.sites.sites.{k}") for k in keys]
    else:
        raise EmsConfigError("ems.yaml.sites: expected a list of sites")
    root.done()
    if not entries:
        raise EmsConfigError("ems.yaml.sites: no sites")
    sites = []
    for default_id, entry, path in entries:
        if not isinstance(entry, Mapping):
            raise EmsConfigError(f"{path}: expected a mapping, got {type(entry).__name__}")
        sites.append(_site(_Section(_merge(defaults, entry), path), default_id, ignore=PASSIVE))
    return sites


def _site(s: _Section, default_id: str, ignore: frozenset[str]) -> SiteConfig:
    site_id = s.text("site_id", "id", default=default_id) or default_id
    name = s.text("name", default=site_id) or site_id
    location = s.section("location")
    forecast = s.section("forecast")
    prices = s.section("prices")  # seed 003: {demo_mode, provider, region}
    zone_default = prices.text("region", default="AT") or "AT"
    prices.ignore("demo_mode", "provider")
    prices.done()
    markets = s.section("markets")
    zone = markets.text("bidding_zone", default=zone_default) or zone_default
    price_market = markets.text("price", "price_market", default=day_ahead_market(zone, "PT60M"))
    trading_market = markets.text("trading", "trading_market",
                                  default=f"EPEX_{zone.replace('-', '_')}_INTRADAY_15MIN")
    markets.done()
    latitude = location.number("latitude", default=forecast.number("latitude", default=VIENNA[0]))
    longitude = location.number("longitude",
                                default=forecast.number("longitude", default=VIENNA[1]))
    timezone = location.text("timezone", default="Europe/Vienna")
    location.ignore("city")
    location.done()
    pv_peak = forecast.num("pv_peak_power_kw", "pv_peak_kw", default=0.0, minimum=0)
    load_profile = forecast.text("load_profile")
    load_scale = forecast.num("load_scale", default=1.0, minimum=0)
    weather_file = forecast.text("weather_file")
    forecast.done()
    battery = _battery(s.section("bess"))
    grid = s.section("grid_connection")
    both = grid.number("max_power_kw", minimum=0)
    import_max = grid.number("import_max_kw", default=both, minimum=0)
    export_max = grid.number("export_max_kw", default=both, minimum=0)
    grid.done()
    feed_in = _feed_in(s.section("feedin_limitation", "feed_in"))
    tariff = _tariff(s.section("grid_tariffs", "tariff"))
    ems = s.section("ems")
    ems.ignore("mode", "timestep_s")  # seed 003: the predecessor's control loop; not a plan setting
    interval_min = ems.number("optimization_interval_minutes", minimum=1)
    interval_s = ems.num("optimisation_interval_s", "optimization_interval_s",
                         default=interval_min * 60 if interval_min else 900, minimum=1)
    horizon_h = ems.number("horizon_hours", minimum=1)
    horizon_s = ems.num("horizon_s", default=horizon_h * 3600 if horizon_h else 86400, minimum=1)
    step_s = ems.num("step_s", default=900, minimum=1)
    soc_deviation = ems.num("soc_deviation_pct", "soc_deviation_percent", default=5.0, minimum=0)
    ems.done()
    # seed 003 has `strategies`, seed 004 3.1 adds `strategy` (ai_selection) to the same file
    strategies = _Section(_merge(s.section("strategy").data, s.section("strategies").data),
                          f"{s.path}.strategies")
    selection_mode = strategies.text("selection_mode", default="auto") or "auto"
    manual_strategy = strategies.text("manual_strategy", default="arbitrage") or "arbitrage"
    threshold = strategies.num("switch_threshold", default=0.15, minimum=0)
    auto_trading = strategies.flag("auto_trading", default=False)
    ai = strategies.section("ai_selection")
    ml_selection = ai.flag("enabled", default=True)
    ml_min_samples = ai.num("min_samples", default=100, minimum=1)
    ai.ignore("training_data_days", "retrain_interval_days")  # seed 004 3.1; the history decides
    ai.done()
    strategies.done()
    s.done(ignore)
    try:
        return SiteConfig(
            site_id=site_id, name=name, price_market=price_market or "",
            trading_market=trading_market or "", bidding_zone=zone,
            latitude=latitude or 0.0, longitude=longitude or 0.0, pv_peak_kw=pv_peak,
            battery=battery, grid_import_max_kw=import_max, grid_export_max_kw=export_max,
            feed_in=feed_in, tariff=tariff, selection_mode=selection_mode,
            manual_strategy=manual_strategy, switch_threshold=threshold,
            auto_trading=auto_trading, optimisation_interval_s=_int(interval_s, ems.path),
            horizon_s=_int(horizon_s, ems.path), step_s=_int(step_s, ems.path),
            soc_deviation_pct=soc_deviation, load_profile=load_profile, load_scale=load_scale,
            weather_file=weather_file,
            timezone=timezone or "Europe/Vienna", ml_selection=ml_selection,
            ml_min_samples=_int(ml_min_samples, ai.path))
    except (ValueError, KeyError) as exc:  # ZoneInfo raises a KeyError subclass
        raise EmsConfigError(f"{s.path}: {exc}") from exc


def _battery(b: _Section) -> Battery:
    if not b.data:
        raise EmsConfigError(f"{b.path}: missing (the site's battery)")
    try:
        battery = Battery(
            capacity_kwh=_req(b.number("energy_capacity_kwh", "capacity_kwh", required=True)),
            power_charge_max_kw=_req(b.number("power_charge_max_kw", required=True)),
            power_discharge_max_kw=_req(b.number("power_discharge_max_kw", required=True)),
            efficiency_charge=b.num("efficiency_charge", default=0.95),
            efficiency_discharge=b.num("efficiency_discharge", default=0.95),
            soc_min_pct=b.num("soc_min_percent", "soc_min_pct", default=10.0),
            soc_max_pct=b.num("soc_max_percent", "soc_max_pct", default=90.0),
            soc_terminal_pct=b.number("soc_terminal_percent", "soc_terminal_pct"),
            degradation_cost_eur_mwh=b.num("degradation_cost_eur_mwh",
                                           default=DEFAULT_DEGRADATION_COST_EUR_MWH),
        )
    except ValueError as exc:
        if isinstance(exc, EmsConfigError):
            raise
        raise EmsConfigError(f"{b.path}: {exc}") from exc
    b.done()
    return battery


def _feed_in(f: _Section) -> FeedInLimit:
    enabled = f.flag("enabled", default=bool(f.data))
    mode = f.text("mode", default="fixed") or "fixed"
    fixed = f.num("fixed_limit_pct", "fixed_limit_percent", default=70.0, minimum=0)
    rules = []
    for rule in f.items("dynamic_rules", "rules"):
        window = _window(rule)
        rules.append(FeedInRule(window, rule.num("limit_pct", "limit_percent", default=100.0,
                                                 minimum=0)))
        rule.done()
    f.done()
    if not enabled:
        return FeedInLimit()
    if mode not in ("fixed", "dynamic"):
        raise EmsConfigError(f"{f.path}.mode: expected fixed or dynamic, got {mode!r}")
    try:
        return FeedInLimit(mode="fixed" if mode == "fixed" else "dynamic",
                           fixed_limit_pct=fixed, rules=tuple(rules))
    except ValueError as exc:
        raise EmsConfigError(f"{f.path}: {exc}") from exc


def _tariff(t: _Section) -> Tariff:
    tou = []
    for rule in t.items("time_of_use"):
        window = _window(rule)
        tou.append(TouRule(window, rule.num("import_fee_eur_mwh", default=0.0, minimum=0)))
        rule.done()
    tariff = Tariff(import_fee_eur_mwh=t.num("import_fee_eur_mwh", default=0.0, minimum=0),
                    export_fee_eur_mwh=t.num("export_fee_eur_mwh", default=0.0, minimum=0),
                    demand_charge_eur_kw=t.num("demand_charge_eur_kw", default=0.0, minimum=0),
                    time_of_use=tuple(tou))
    t.done()
    return tariff


def _window(rule: _Section) -> TimeWindow:
    text = rule.text("time")
    if text is None:
        raise EmsConfigError(f"{rule.path}.time: missing (like '06:00-18:00')")
    try:
        return TimeWindow.parse(text)
    except ValueError as exc:
        raise EmsConfigError(f"{rule.path}.time: {exc}") from exc


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _req(value: float | None) -> float:
    assert value is not None
    return value


def _int(value: float, path: str) -> int:
    if value != int(value):
        raise EmsConfigError(f"{path}: expected whole seconds, got {value}")
    return int(value)
