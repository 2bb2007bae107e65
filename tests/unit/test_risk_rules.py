"""domain.risk.rules: each rule accepts exactly at its bound and rejects just beyond it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from fractions import Fraction

import pytest

from domain.risk import Block, KillSwitch, Rejection, SiteLimits
from domain.risk import rules as r
from schemas.trading import Side

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = SiteLimits(capacity_mwh=D(2), max_power_mw=D(1))  # SoC 15..90 %, efficiencies 0.95
EPS = D("0.0000001")


def reason(rejection: Rejection | None) -> str | None:
    return None if rejection is None else rejection.reason


def block(side: Side, qty: str, start_min: int = 0, minutes: int = 15) -> Block:
    start = T0 + timedelta(minutes=start_min)
    return Block(side, D(qty), start, start + timedelta(minutes=minutes))


# --- energy feasibility ------------------------------------------------------------------

def test_buy_needs_headroom_times_charge_efficiency() -> None:
    # SoC 42.5 %: headroom (90 - 42.5) % x 2 MWh = 0.95 MWh; buying 1 MWh stores 0.95 MWh.
    soc = D("42.5")
    assert r.check_energy(Side.BUY, D(1), D(0), soc, LIMITS) is None
    assert reason(r.check_energy(Side.BUY, D(1) + EPS, D(0), soc, LIMITS)) == "soc_above_max"


def test_sell_needs_stored_energy_times_discharge_efficiency() -> None:
    # SoC 62.5 %: (62.5 - 15) % x 2 MWh = 0.95 MWh in the cells deliver 0.9025 MWh.
    soc = D("62.5")
    assert r.check_energy(Side.SELL, D("0.9025"), D(0), soc, LIMITS) is None
    assert reason(r.check_energy(Side.SELL, D("0.9025") + EPS, D(0), soc, LIMITS)) \
        == "soc_below_min"


def test_efficiency_changes_the_bound() -> None:
    lossless = SiteLimits(capacity_mwh=D(2), max_power_mw=D(1), charge_efficiency=D(1),
                          discharge_efficiency=D(1))
    # 0.95 MWh headroom: with losses 1 MWh bought fits, lossless only 0.95 MWh.
    assert r.check_energy(Side.BUY, D(1), D(0), D("42.5"), LIMITS) is None
    assert reason(r.check_energy(Side.BUY, D(1), D(0), D("42.5"), lossless)) == "soc_above_max"
    assert r.check_energy(Side.BUY, D("0.95"), D(0), D("42.5"), lossless) is None
    # 0.95 MWh stored: lossless sells 0.95 MWh, with losses only 0.9025 MWh.
    assert r.check_energy(Side.SELL, D("0.95"), D(0), D("62.5"), lossless) is None
    assert reason(r.check_energy(Side.SELL, D("0.95"), D(0), D("62.5"), LIMITS)) \
        == "soc_below_min"


def test_committed_energy_counts_against_the_bound() -> None:
    soc = D("42.5")  # room for 1 MWh bought
    assert r.check_energy(Side.BUY, D("0.6"), D("0.4"), soc, LIMITS) is None
    assert reason(r.check_energy(Side.BUY, D("0.6") + EPS, D("0.4"), soc, LIMITS)) \
        == "soc_above_max"


def test_physics_not_seed_000_wording_buy_when_empty_sell_when_full() -> None:
    """Seed 000 says BUY only at SoC >= 15 % and SELL only at SoC <= 90 %: the wrong way round.
    An empty battery can charge and not discharge; a full one the opposite."""
    empty, full = D(10), D(95)
    assert r.check_energy(Side.BUY, D("0.5"), D(0), empty, LIMITS) is None
    assert reason(r.check_energy(Side.SELL, D("0.01"), D(0), empty, LIMITS)) == "soc_below_min"
    assert r.check_energy(Side.SELL, D("0.5"), D(0), full, LIMITS) is None
    assert reason(r.check_energy(Side.BUY, D("0.01"), D(0), full, LIMITS)) == "soc_above_max"
    # exactly at the limits nothing is left on that side
    assert reason(r.check_energy(Side.BUY, EPS, D(0), D(90), LIMITS)) == "soc_above_max"
    assert reason(r.check_energy(Side.SELL, EPS, D(0), D(15), LIMITS)) == "soc_below_min"


# --- telemetry -----------------------------------------------------------------------------

def test_missing_telemetry() -> None:
    assert reason(r.check_telemetry(None, T0, LIMITS)) == "telemetry_missing"


def test_stale_telemetry_boundary() -> None:
    reading = T0 - timedelta(seconds=300)
    assert r.check_telemetry(reading, T0, LIMITS) is None  # exactly max age: fresh
    stale = r.check_telemetry(reading - timedelta(microseconds=1), T0, LIMITS)
    assert reason(stale) == "telemetry_stale"
    assert stale is not None and "300.000001 s old" in stale.detail


# --- temperature and rate ------------------------------------------------------------------

def test_temperature_halt_at_45() -> None:
    assert r.check_temperature_halt(None, LIMITS) is None
    assert r.check_temperature_halt(D("44.9"), LIMITS) is None
    assert reason(r.check_temperature_halt(D(45), LIMITS)) == "temperature_halt"


@pytest.mark.parametrize(("temperature", "base", "allowed"), [
    (None, 120, 120), (D("39.9"), 120, 120), (D(40), 120, 60), (D("44.9"), 121, 60),
    (D(40), 1, 1),
])
def test_rate_halves_at_40(temperature: D | None, base: int, allowed: int) -> None:
    assert r.allowed_orders_per_minute(base, temperature, LIMITS) == allowed


def test_rate_limit_counts_a_sliding_minute_of_event_time() -> None:
    times = [T0] * 119 + [T0 + timedelta(seconds=30)]
    assert r.check_rate(times[:-1], T0 + timedelta(seconds=30), 120, "M") is None
    assert reason(r.check_rate(times, T0 + timedelta(seconds=30), 120, "M")) == "rate_limited"
    # the 119 orders at T0 leave the window (now - 60 s, now] at exactly T0 + 60 s
    assert reason(r.check_rate(times, T0 + timedelta(seconds=60) - timedelta(microseconds=1),
                               120, "M")) == "rate_limited"
    assert r.check_rate(times, T0 + timedelta(seconds=60), 120, "M") is None


# --- power -----------------------------------------------------------------------------------

def test_power_boundary() -> None:
    assert r.check_power(block(Side.SELL, "0.25"), [], LIMITS) is None  # 0.25 MWh / 0.25 h
    assert reason(r.check_power(Block(Side.SELL, D("0.25") + EPS, T0, T0 + timedelta(
        minutes=15)), [], LIMITS)) == "power_above_max"
    assert r.check_power(block(Side.BUY, "1", minutes=60), [], LIMITS) is None
    assert reason(r.check_power(block(Side.BUY, "1", minutes=59), [], LIMITS)) \
        == "power_above_max"


def test_power_adds_same_side_commitments_that_overlap() -> None:
    others = [block(Side.SELL, "0.125"),                  # 0.5 MW, same period
              block(Side.BUY, "0.25"),                    # other side: ignored
              block(Side.SELL, "0.25", start_min=15)]     # next quarter hour: ignored
    assert r.check_power(block(Side.SELL, "0.125"), others, LIMITS) is None
    assert reason(r.check_power(Block(Side.SELL, D("0.125") + EPS, T0, T0 + timedelta(
        minutes=15)), others, LIMITS)) == "power_above_max"


def test_power_peak_of_staggered_periods_is_exact() -> None:
    # candidate one hour at 0.5 MW; two quarter hours at 0.5 MW each, never at the same time
    hour = block(Side.BUY, "0.5", minutes=60)
    others = [block(Side.BUY, "0.125", start_min=0), block(Side.BUY, "0.125", start_min=30)]
    assert r.peak_power_mw(hour, others) == 1
    assert r.check_power(hour, others, LIMITS) is None
    overlapping = [*others, block(Side.BUY, "0.0025", start_min=35, minutes=1)]  # +0.15 MW
    assert r.peak_power_mw(hour, overlapping) == Fraction(23, 20)


# --- positions -----------------------------------------------------------------------------

def test_market_position_limit_counts_open_orders_on_the_same_side() -> None:
    # net +4, open buys 3: a BUY of 3 reaches exactly +10
    assert r.check_position_market(Side.BUY, D(3), D(4), D(3), D(10), "M") is None
    assert reason(r.check_position_market(Side.BUY, D(3) + EPS, D(4), D(3), D(10), "M")) \
        == "position_limit_market"
    # net -4, open sells 3: a SELL of 3 reaches exactly -10
    assert r.check_position_market(Side.SELL, D(3), D(-4), D(3), D(10), "M") is None
    assert reason(r.check_position_market(Side.SELL, D(3) + EPS, D(-4), D(3), D(10), "M")) \
        == "position_limit_market"
    assert r.check_position_market(Side.BUY, D(100), D(0), D(0), None, "M") is None


def test_orders_that_reduce_an_excess_position_pass() -> None:
    assert r.check_position_market(Side.SELL, D(1), D(12), D(0), D(10), "M") is None
    assert r.check_position_site(Side.BUY, D(1), D(-25), D(0), D(20)) is None
    # ... but not when they overshoot to a larger position on the other side
    assert reason(r.check_position_site(Side.BUY, D(51), D(-25), D(0), D(20))) \
        == "position_limit_site"


def test_site_position_limit_boundary() -> None:
    assert r.check_position_site(Side.SELL, D(5), D(-10), D(5), D(20)) is None
    assert reason(r.check_position_site(Side.SELL, D(5) + EPS, D(-10), D(5), D(20))) \
        == "position_limit_site"


# --- kill switches and sites ---------------------------------------------------------------

def test_kill_switches() -> None:
    switch = KillSwitch(T0, "ops")
    assert r.check_kill_switch_global(None) is None
    assert r.check_kill_switch_site(None, "s") is None
    glob = r.check_kill_switch_global(switch)
    assert reason(glob) == "kill_switch_global" and glob is not None and "ops" in glob.detail
    assert reason(r.check_kill_switch_site(KillSwitch(T0), "s")) == "kill_switch_site"


def test_unknown_site() -> None:
    assert reason(r.check_site_known(None, "x")) == "unknown_site"
    assert r.check_site_known(LIMITS, "x") is None
