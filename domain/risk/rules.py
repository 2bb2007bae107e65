"""Pre-trade risk rules: each a pure function returning None (accept) or a `Rejection`.

Energy feasibility follows the physics, not seed 000's wording. Seed 000 says "BUY only when
SoC >= 15 %, SELL only when SoC <= 90 %", which would refuse to charge an empty battery and
to discharge a full one. Seed 002 describes the trading intent (buy when empty, sell when
full), so: a BUY (charging) needs headroom below the SoC maximum, a SELL (discharging) needs
stored energy above the SoC minimum, both counting the site's already committed energy:

    BUY:  (soc_max - soc) / 100 * capacity >= (committed buys + qty) * charge_efficiency
    SELL: (soc - soc_min) / 100 * capacity * discharge_efficiency >= committed sells + qty

All comparisons are exact (Decimal, and Fraction for power); bounds are inclusive: an order
exactly at a limit passes, anything beyond it is rejected.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from domain.risk.config import RATE_WINDOW_S, SiteLimits
from domain.risk.state import KillSwitch
from schemas.trading import RejectReason, Side

_US_PER_HOUR = 3_600_000_000
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True)
class Block:
    """Energy on one side over a delivery period: an order (or the part a check adds)."""

    side: Side
    quantity_mwh: Decimal
    delivery_start: datetime
    delivery_end: datetime

    @property
    def power_mw(self) -> Fraction:
        micros = (self.delivery_end - self.delivery_start) // _US
        return Fraction(self.quantity_mwh) * _US_PER_HOUR / micros


def check_site_known(limits: SiteLimits | None, site: str) -> Rejection | None:
    if limits is None:
        return Rejection("unknown_site", f"site {site!r} is not in the risk policy")
    return None


def check_kill_switch_global(switch: KillSwitch | None) -> Rejection | None:
    if switch is None:
        return None
    return Rejection("kill_switch_global", f"global kill switch engaged at "
                     f"{switch.engaged_at.isoformat()}: {switch.reason}".rstrip(": "))


def check_kill_switch_site(switch: KillSwitch | None, site: str) -> Rejection | None:
    if switch is None:
        return None
    return Rejection("kill_switch_site", f"kill switch of {site} engaged at "
                     f"{switch.engaged_at.isoformat()}: {switch.reason}".rstrip(": "))


def check_telemetry(soc_time: datetime | None, now: datetime,
                    limits: SiteLimits) -> Rejection | None:
    """The SoC reading must exist and be at most `max_telemetry_age_s` old at `now`."""
    if soc_time is None:
        return Rejection("telemetry_missing", "no state-of-charge reading for the site yet")
    age_us = (now - soc_time) // _US
    if age_us > limits.max_telemetry_age_s * 1_000_000:  # exact: int vs Decimal
        age_s = Decimal(age_us) / 1_000_000
        return Rejection("telemetry_stale", f"state of charge is {age_s} s old "
                         f"(max {limits.max_telemetry_age_s} s)")
    return None


def check_temperature_halt(temperature_c: Decimal | None,
                           limits: SiteLimits) -> Rejection | None:
    """At or above the halt temperature, trading for the site stops (seed 002, scenario 3).

    Without a temperature reading nothing is halted; the latest reading counts whatever its
    age, so a hot site stays halted until a cooler reading arrives."""
    if temperature_c is not None and temperature_c >= limits.temperature_halt_c:
        return Rejection("temperature_halt", f"temperature {temperature_c} degC >= "
                         f"{limits.temperature_halt_c} degC: trading halted")
    return None


def allowed_orders_per_minute(base: int, temperature_c: Decimal | None,
                              limits: SiteLimits) -> int:
    """The market's rate, halved (rounded down, at least 1) at or above the throttle
    temperature (seed 000: "ab 40 degC: 50 % Reduktion")."""
    if temperature_c is not None and temperature_c >= limits.temperature_throttle_c:
        return max(1, base // 2)
    return base


def check_rate(recent: Sequence[datetime], now: datetime, allowed: int,
               market: str) -> Rejection | None:
    """At most `allowed` approved orders in the sliding window (now - 60 s, now] of EVENT
    time: `recent` are the event times of the orders approved before, sorted."""
    count = len(recent) - bisect_right(recent, now - timedelta(seconds=RATE_WINDOW_S))
    if count >= allowed:
        return Rejection("rate_limited", f"{count} orders in the last {RATE_WINDOW_S} s on "
                         f"{market} (limit {allowed} per minute)")
    return None


def peak_power_mw(candidate: Block, others: Iterable[Block]) -> Fraction:
    """The highest total power of `candidate` and the `others` (same side) at any instant of
    the candidate's delivery period; the sum is piecewise constant, so checking the start
    of every period inside it is exact."""
    start, end = candidate.delivery_start, candidate.delivery_end
    blocks = [b for b in others if b.side is candidate.side
              and b.delivery_start < end and b.delivery_end > start]
    peak = Fraction(0)
    for t in {start} | {b.delivery_start for b in blocks if b.delivery_start > start}:
        energy_by_period_us: dict[int, Decimal] = {}  # exact sums, one division per length
        for b in blocks:
            if b.delivery_start <= t < b.delivery_end:
                us = (b.delivery_end - b.delivery_start) // _US
                energy_by_period_us[us] = energy_by_period_us.get(us, Decimal(0)) \
                    + b.quantity_mwh
        peak = max(peak, sum((Fraction(q) * _US_PER_HOUR / us
                              for us, q in energy_by_period_us.items()), Fraction(0)))
    return candidate.power_mw + peak


def check_power(candidate: Block, others: Sequence[Block],
                limits: SiteLimits) -> Rejection | None:
    """Energy per delivery hour, with the site's other commitments on the same side in the
    same period, must not exceed `max_power_mw`."""
    start, end, side = candidate.delivery_start, candidate.delivery_end, candidate.side
    if not any(b.side is side and b.delivery_start < end and b.delivery_end > start
               for b in others):
        # the common case, alone in its period: compare q * h / us <= max in integers (exact)
        q_num, q_den = candidate.quantity_mwh.as_integer_ratio()
        max_num, max_den = limits.max_power_mw.as_integer_ratio()
        if q_num * _US_PER_HOUR * max_den <= max_num * q_den * ((end - start) // _US):
            return None
    peak = peak_power_mw(candidate, others)
    if peak > limits.max_power_mw:
        return Rejection("power_above_max", f"{candidate.side} needs {float(peak):.6g} MW in "
                         f"its delivery period (max {limits.max_power_mw} MW)")
    return None


def _position_after(side: Side, net_mwh: Decimal, open_same_side_mwh: Decimal,
                    quantity_mwh: Decimal) -> Decimal:
    if side is Side.BUY:
        return net_mwh + open_same_side_mwh + quantity_mwh
    return net_mwh - open_same_side_mwh - quantity_mwh


def check_position_market(side: Side, quantity_mwh: Decimal, net_mwh: Decimal,
                          open_same_side_mwh: Decimal, limit_mwh: Decimal | None,
                          market: str) -> Rejection | None:
    """|net position| in the market if this and the open same-side orders all fill. A BUY can
    only push the position up and a SELL down, so each checks its own side of the band."""
    after = _position_after(side, net_mwh, open_same_side_mwh, quantity_mwh)
    if limit_mwh is not None and abs(after) > limit_mwh and abs(after) > abs(net_mwh):
        return Rejection("position_limit_market", f"net position on {market} would reach "
                         f"{after} MWh (limit +/-{limit_mwh} MWh)")
    return None


def check_position_site(side: Side, quantity_mwh: Decimal, net_mwh: Decimal,
                        open_same_side_mwh: Decimal,
                        limit_mwh: Decimal | None) -> Rejection | None:
    """As `check_position_market`, over all markets of the site."""
    after = _position_after(side, net_mwh, open_same_side_mwh, quantity_mwh)
    if limit_mwh is not None and abs(after) > limit_mwh and abs(after) > abs(net_mwh):
        return Rejection("position_limit_site", f"net position of the site would reach "
                         f"{after} MWh (limit +/-{limit_mwh} MWh)")
    return None


def check_energy(side: Side, quantity_mwh: Decimal, committed_same_side_mwh: Decimal,
                 soc_pct: Decimal, limits: SiteLimits) -> Rejection | None:
    """A BUY needs headroom below soc_max, a SELL stored energy above soc_min (module doc)."""
    need_mwh = committed_same_side_mwh + quantity_mwh
    if side is Side.BUY:
        headroom_mwh = (limits.soc_max_pct - soc_pct) / 100 * limits.capacity_mwh
        if headroom_mwh < need_mwh * limits.charge_efficiency:
            return Rejection("soc_above_max", f"charging {need_mwh} MWh x "
                             f"{limits.charge_efficiency} needs more than the {headroom_mwh} "
                             f"MWh below {limits.soc_max_pct} % SoC (at {soc_pct} %)")
        return None
    stored_mwh = (soc_pct - limits.soc_min_pct) / 100 * limits.capacity_mwh
    if stored_mwh * limits.discharge_efficiency < need_mwh:
        return Rejection("soc_below_min", f"selling {need_mwh} MWh needs more than the "
                         f"{stored_mwh} MWh x {limits.discharge_efficiency} above "
                         f"{limits.soc_min_pct} % SoC (at {soc_pct} %)")
    return None
