"""Risk policy: per-market order rates and per-site limits, validated from a plain dict.

The domain never reads files: infrastructure parses ``policy/policy.yaml`` and hands the dict to
`Policy.from_dict`. Numbers become `Decimal` (via ``str``, so ``0.95`` stays ``0.95``).

`per_market_rps` keeps the predecessor's key name (seed 000, ``policy/policy.yaml``), but the
values are orders PER MINUTE per market ("Orders pro Minute"), not per second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

RATE_WINDOW_S = 60
"""The rate limit counts orders in a sliding window of this many seconds of event time."""


class PolicyError(ValueError):
    """The policy document is invalid; the message names the offending field."""


@dataclass(frozen=True)
class SiteLimits:
    """Physical and risk limits of one battery site. Units are in the names."""

    capacity_mwh: Decimal
    max_power_mw: Decimal
    soc_min_pct: Decimal = Decimal(15)  # seed 000
    soc_max_pct: Decimal = Decimal(90)  # seed 000
    charge_efficiency: Decimal = Decimal("0.95")  # stored / bought
    discharge_efficiency: Decimal = Decimal("0.95")  # sold / drawn from the cells
    max_telemetry_age_s: Decimal = Decimal(300)
    market_position_limit_mwh: Decimal | None = None  # |net| per market; None = unlimited
    site_position_limit_mwh: Decimal | None = None  # |net| over all markets; None = unlimited
    market_position_limits_mwh: Mapping[str, Decimal] = field(default_factory=dict)
    temperature_throttle_c: Decimal = Decimal(40)  # rate halves at or above
    temperature_halt_c: Decimal = Decimal(45)  # trading stops at or above (seed 002, scenario 3)
    # a purely financial participant (the demo market maker): no battery, so no telemetry,
    # temperature, power or energy rules; kill switches, rates and positions still apply
    liquidity_provider: bool = False

    def position_limit_mwh(self, market: str) -> Decimal | None:
        """The |net position| limit of `market`: its own entry, else the site's default."""
        return self.market_position_limits_mwh.get(market, self.market_position_limit_mwh)


@dataclass(frozen=True)
class Policy:
    """The risk policy: order rates per market and the limits of every known site."""

    version: int
    per_market_rps: Mapping[str, int]  # orders per MINUTE per market (name from seed 000)
    sites: Mapping[str, SiteLimits]
    default_orders_per_minute: int = 60  # markets not listed in per_market_rps

    def orders_per_minute(self, market: str) -> int:
        return self.per_market_rps.get(market, self.default_orders_per_minute)

    def site(self, site: str) -> SiteLimits | None:
        return self.sites.get(site)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Validate a parsed policy document (see ``policy/policy.yaml``).

        Keys: ``version`` (int), ``per_market_rps`` (market -> orders/min), optional
        ``default_orders_per_minute``, optional ``limits`` (defaults for every site) and
        ``sites`` (site id -> overrides of ``limits``). Unknown keys are errors (typos).
        """
        if not isinstance(data, Mapping):
            raise PolicyError(f"policy: expected a mapping, got {type(data).__name__}")
        _no_unknown(data, {"version", "per_market_rps", "default_orders_per_minute", "limits",
                           "sites"}, "policy")
        version = _int(data.get("version"), "version", minimum=0)
        rates_in = _mapping(data.get("per_market_rps", {}), "per_market_rps")
        rates = {str(m): _int(v, f"per_market_rps.{m}", minimum=1) for m, v in rates_in.items()}
        default_rate = _int(data.get("default_orders_per_minute", 60),
                            "default_orders_per_minute", minimum=1)
        defaults = _mapping(data.get("limits", {}), "limits")
        sites_in = _mapping(data.get("sites"), "sites")
        if not sites_in:
            raise PolicyError("sites: at least one site is required")
        sites = {str(s): _site_limits({**defaults, **_mapping(v, f"sites.{s}")}, f"sites.{s}")
                 for s, v in sites_in.items()}
        return cls(version=version, per_market_rps=rates, sites=sites,
                   default_orders_per_minute=default_rate)


_SITE_FIELDS = {f.name for f in fields(SiteLimits)}
_OPTIONAL_LIMITS = {"market_position_limit_mwh", "site_position_limit_mwh"}


def _site_limits(raw: Mapping[str, Any], where: str) -> SiteLimits:
    _no_unknown(raw, _SITE_FIELDS, where)
    for required in ("capacity_mwh", "max_power_mw"):
        if required not in raw:
            raise PolicyError(f"{where}.{required}: required")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "market_position_limits_mwh":
            per_market = _mapping(value, f"{where}.{name}")
            values[name] = {str(m): _positive(v, f"{where}.{name}.{m}")
                            for m, v in per_market.items()}
        elif name == "liquidity_provider":
            if not isinstance(value, bool):
                raise PolicyError(f"{where}.{name}: expected true or false, got {value!r}")
            values[name] = value
        elif name in _OPTIONAL_LIMITS and value is None:
            values[name] = None
        else:
            values[name] = _decimal(value, f"{where}.{name}")
    limits = SiteLimits(**values)
    _check_site(limits, where)
    return limits


def _check_site(s: SiteLimits, where: str) -> None:
    checks = [
        (s.capacity_mwh > 0, "capacity_mwh", "must be > 0"),
        (s.max_power_mw > 0, "max_power_mw", "must be > 0"),
        (0 <= s.soc_min_pct < s.soc_max_pct <= 100, "soc_min_pct",
         f"need 0 <= soc_min_pct < soc_max_pct <= 100, got {s.soc_min_pct}..{s.soc_max_pct}"),
        (0 < s.charge_efficiency <= 1, "charge_efficiency", "must be in (0, 1]"),
        (0 < s.discharge_efficiency <= 1, "discharge_efficiency", "must be in (0, 1]"),
        (s.max_telemetry_age_s > 0, "max_telemetry_age_s", "must be > 0"),
        (s.temperature_throttle_c <= s.temperature_halt_c, "temperature_throttle_c",
         "must be <= temperature_halt_c"),
        (s.market_position_limit_mwh is None or s.market_position_limit_mwh > 0,
         "market_position_limit_mwh", "must be > 0 or null"),
        (s.site_position_limit_mwh is None or s.site_position_limit_mwh > 0,
         "site_position_limit_mwh", "must be > 0 or null"),
    ]
    for ok, name, message in checks:
        if not ok:
            raise PolicyError(f"{where}.{name}: {message}")


def _no_unknown(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(map(str, raw)) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(allowed))}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        raise PolicyError(f"{where}: required")
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _int(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{where}: expected an integer, got {value!r}")
    if value < minimum:
        raise PolicyError(f"{where}: must be >= {minimum}, got {value}")
    return value


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PolicyError(f"{where}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PolicyError(f"{where}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise PolicyError(f"{where}: must be finite, got {value!r}")
    return number


def _positive(value: Any, where: str) -> Decimal:
    number = _decimal(value, where)
    if number <= 0:
        raise PolicyError(f"{where}: must be > 0, got {value!r}")
    return number
