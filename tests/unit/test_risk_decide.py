"""domain.risk.decider: the rules applied to a site's state; reservations; rate in event time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.risk import Policy, RiskState, decide, evolve
from schemas.base import Payload
from schemas.telemetry import TelemetryReceived
from schemas.trading import (
    CancelOrder,
    ModifyOrder,
    OrderAccepted,
    OrderRejected,
    SetKillSwitch,
    Side,
    SubmitOrder,
    TimeInForce,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DELIVERY = T0 + timedelta(hours=2)
SITE, MARKET = "site-1", "EPEX_AT_INTRADAY_15MIN"


def policy(**site: Any) -> Policy:
    return Policy.from_dict({
        "version": 7, "per_market_rps": {MARKET: 120},
        "sites": {SITE: {"capacity_mwh": 2, "max_power_mw": 10, **site}}})


def telemetry(soc: float | None = 50.0, temp: float | None = 25.0, at: datetime = T0,
              site: str = SITE) -> TelemetryReceived:
    return TelemetryReceived(site=site, device_id="bms", source="modbus", device_time=at,
                             received_at=at, soc_pct=soc, temperature_c=temp)


def submit(side: Side, qty: str | D, at: datetime = T0, market: str = MARKET,
           minutes: int = 60, order_id: uuid.UUID | None = None) -> SubmitOrder:
    return SubmitOrder(order_id=order_id or uuid.uuid4(), account="acc", site=SITE,
                       market=market, side=side, quantity_mwh=D(qty), limit_price_eur_mwh=D(50),
                       delivery_start=DELIVERY,
                       delivery_end=DELIVERY + timedelta(minutes=minutes), submitted_at=at)


def given_events(*payloads: Payload, at: datetime = T0) -> RiskState:
    state = RiskState(SITE)
    for p in payloads:
        state = evolve(state, p, at)
    return state


def fresh(soc: float = 50.0, temp: float | None = 25.0) -> RiskState:
    return given_events(telemetry(soc, temp))


def run(state: RiskState, *commands: Any, pol: Policy | None = None,
        at: datetime = T0) -> tuple[RiskState, list[OrderRejected | None]]:
    out = []
    for cmd in commands:
        state, rejection = decide(state, cmd, at, pol or policy())
        out.append(rejection)
    return state, out


def reasons(rejections: list[OrderRejected | None]) -> list[str | None]:
    return [None if x is None else x.reason for x in rejections]


def test_approved_orders_are_reserved_at_once() -> None:
    # SoC 50 %, max 90 %: 0.8 MWh headroom takes 0.8 / 0.95 MWh bought
    state, out = run(fresh(), submit(Side.BUY, "0.5"), submit(Side.BUY, "0.5"),
                     submit(Side.BUY, "0.34"))
    assert reasons(out) == [None, "soc_above_max", None]
    assert sum(o.remaining_mwh for o in state.open_orders.values()) == D("0.84")


def test_the_rejection_event() -> None:
    cmd = submit(Side.SELL, "2")
    _, [rejection] = run(fresh(), cmd)
    assert rejection is not None
    assert (rejection.order_id, rejection.site, rejection.market, rejection.account) \
        == (cmd.order_id, SITE, MARKET, "acc")
    assert (rejection.stage, rejection.reason, rejection.rejected_at) \
        == ("risk", "soc_below_min", T0)
    assert "SoC" in rejection.detail


def test_open_orders_from_the_log_count_too() -> None:
    accepted = OrderAccepted(order_id=uuid.uuid4(), account="acc", site=SITE, market=MARKET,
                             side=Side.SELL, quantity_mwh=D("0.6"), limit_price_eur_mwh=D(50),
                             time_in_force=TimeInForce.GTC, delivery_start=DELIVERY,
                             delivery_end=DELIVERY + timedelta(hours=1), accepted_at=T0)
    state = given_events(telemetry(50.0), accepted)
    # (50 - 15) % x 2 MWh x 0.95 = 0.665 MWh sellable, 0.6 already offered
    _, out = run(state, submit(Side.SELL, "0.065"))
    assert reasons(out) == [None]
    _, out = run(state, submit(Side.SELL, "0.0651"))
    assert reasons(out) == ["soc_below_min"]


def test_cancel_always_passes_even_with_kill_switch_hot_or_stale() -> None:
    order = submit(Side.BUY, "0.5")
    cancel = CancelOrder(order_id=order.order_id, site=SITE, market=MARKET, requested_at=T0)
    state, _ = run(fresh(), order)
    blocked = [evolve(state, SetKillSwitch(engaged=True, requested_at=T0), T0),
               evolve(state, telemetry(temp=50.0, at=T0 + timedelta(seconds=1)), T0),
               RiskState(SITE), RiskState("nowhere")]
    for s in blocked:
        after, [rejection] = run(s, cancel, at=T0 + timedelta(hours=1))
        assert rejection is None
        assert after.open_orders == s.open_orders  # released by OrderCancelled, not here


def test_unknown_site_and_missing_telemetry() -> None:
    _, out = run(RiskState("nowhere"), submit(Side.BUY, "0.1"))
    assert reasons(out) == ["unknown_site"]
    _, out = run(RiskState(SITE), submit(Side.BUY, "0.1"))
    assert reasons(out) == ["telemetry_missing"]
    _, out = run(given_events(telemetry(soc=None)), submit(Side.BUY, "0.1"))
    assert reasons(out) == ["telemetry_missing"]


def test_stale_telemetry_boundary_in_event_time() -> None:
    state = fresh()
    limit = T0 + timedelta(seconds=300)
    assert reasons(run(state, submit(Side.BUY, "0.1", at=limit), at=limit)[1]) == [None]
    late = limit + timedelta(milliseconds=1)
    assert reasons(run(state, submit(Side.BUY, "0.1", at=late), at=late)[1]) \
        == ["telemetry_stale"]
    renewed = evolve(state, telemetry(at=late), late)
    assert reasons(run(renewed, submit(Side.BUY, "0.1"), at=late)[1]) == [None]


def test_an_older_reading_does_not_replace_a_newer_one() -> None:
    state = given_events(telemetry(50.0, at=T0), telemetry(89.0, at=T0 - timedelta(seconds=1)))
    assert state.soc_pct == D(50) and state.soc_time == T0


def test_rate_limit_is_deterministic_in_event_time() -> None:
    orders = [submit(Side.BUY, "0.001") for _ in range(121)]
    state, out = run(fresh(), *orders)
    assert reasons(out) == [None] * 120 + ["rate_limited"]
    # rejected orders use no rate: the window still holds exactly the 120 approved
    assert len(state.recent_orders[MARKET]) == 120
    # same state, same event times -> same answers, whatever the wall clock does
    assert reasons(run(fresh(), *orders)[1]) == reasons(out)
    almost = T0 + timedelta(seconds=60) - timedelta(microseconds=1)
    assert reasons(run(state, submit(Side.BUY, "0.001"), at=almost)[1]) == ["rate_limited"]
    later = T0 + timedelta(seconds=60)
    state = evolve(state, telemetry(at=later), later)
    state, out = run(state, submit(Side.BUY, "0.001"), at=later)
    assert reasons(out) == [None] and len(state.recent_orders[MARKET]) == 1  # window slid


def test_rate_limit_is_per_market() -> None:
    state, _ = run(fresh(), *[submit(Side.BUY, "0.001") for _ in range(120)])
    _, out = run(state, submit(Side.BUY, "0.001", market="EPEX_DE_INTRADAY_15MIN"))
    assert reasons(out) == [None]


def test_at_40_degc_the_rate_halves_at_45_trading_stops() -> None:
    orders = [submit(Side.BUY, "0.001") for _ in range(61)]
    assert reasons(run(fresh(temp=39.9), *orders)[1]) == [None] * 61
    assert reasons(run(fresh(temp=40.0), *orders)[1]) == [None] * 60 + ["rate_limited"]
    assert reasons(run(fresh(temp=44.9), submit(Side.SELL, "0.1"))[1]) == [None]
    hot = fresh(temp=45.0)
    assert reasons(run(hot, submit(Side.SELL, "0.1"), submit(Side.BUY, "0.1"))[1]) \
        == ["temperature_halt", "temperature_halt"]
    cooled = evolve(hot, telemetry(soc=None, temp=43.0, at=T0 + timedelta(seconds=1)), T0)
    assert reasons(run(cooled, submit(Side.SELL, "0.1"))[1]) == [None]


def test_kill_switch_site_and_global_and_release() -> None:
    state = fresh()
    site_on = SetKillSwitch(site=SITE, engaged=True, reason="ops", requested_at=T0)
    site_off = SetKillSwitch(site=SITE, engaged=False, requested_at=T0)
    glob_on = SetKillSwitch(engaged=True, reason="market halt", requested_at=T0)
    glob_off = SetKillSwitch(engaged=False, requested_at=T0)
    other = SetKillSwitch(site="site-2", engaged=True, requested_at=T0)
    order = submit(Side.BUY, "0.1")

    assert reasons(run(evolve(state, other, T0), order)[1]) == [None]
    assert reasons(run(evolve(state, site_on, T0), order)[1]) == ["kill_switch_site"]
    assert reasons(run(evolve(state, glob_on, T0), order)[1]) == ["kill_switch_global"]
    both = evolve(evolve(state, site_on, T0), glob_on, T0)
    assert reasons(run(both, order)[1]) == ["kill_switch_global"]
    assert reasons(run(evolve(both, glob_off, T0), order)[1]) == ["kill_switch_site"]
    assert reasons(run(evolve(evolve(both, glob_off, T0), site_off, T0), order)[1]) == [None]


def test_power_is_checked_per_delivery_period_with_open_orders() -> None:
    pol = policy(max_power_mw=1)
    _, out = run(fresh(), submit(Side.SELL, "0.25", minutes=15),
                 submit(Side.SELL, "0.0000001", minutes=15), pol=pol)
    assert reasons(out) == [None, "power_above_max"]
    _, out = run(fresh(), submit(Side.SELL, "0.2500001", minutes=15), pol=pol)
    assert reasons(out) == ["power_above_max"]


def test_position_limits_per_market_and_site() -> None:
    pol = policy(capacity_mwh=100, market_position_limit_mwh=1, site_position_limit_mwh="1.5")
    state, out = run(fresh(), submit(Side.BUY, "0.6"), submit(Side.BUY, "0.4"),
                     submit(Side.BUY, "0.1"), pol=pol)
    assert reasons(out) == [None, None, "position_limit_market"]
    _, out = run(state, submit(Side.BUY, "0.5", market="M2"),
                 submit(Side.BUY, "0.1", market="M2"), pol=pol)
    assert reasons(out) == [None, "position_limit_site"]


def test_a_modify_that_raises_the_quantity_is_rechecked() -> None:
    first = submit(Side.BUY, "0.5")
    state, _ = run(fresh(), first)  # 0.8 / 0.95 = 0.842... MWh fit
    def modify(qty: str | None, price: str | None = None) -> ModifyOrder:
        return ModifyOrder(order_id=first.order_id, site=SITE, market=MARKET,
                           new_quantity_mwh=None if qty is None else D(qty),
                           new_limit_price_eur_mwh=None if price is None else D(price),
                           requested_at=T0)
    raised, out = run(state, modify("0.84"))
    assert reasons(out) == [None]
    order = raised.open_orders[first.order_id]
    assert (order.quantity_mwh, order.remaining_mwh, order.previous_quantity_mwh) \
        == (D("0.84"), D("0.84"), D("0.5"))
    assert reasons(run(state, modify("0.85"))[1]) == ["soc_above_max"]
    # lowering, or only a new price, always passes (and adds no rate)
    killed = evolve(raised, SetKillSwitch(engaged=True, requested_at=T0), T0)
    after, out = run(killed, modify("0.1"), modify(None, "60"))
    assert reasons(out) == [None, None] and after == killed
    # a modify of an order the site does not hold is the matching engine's business
    unknown = ModifyOrder(order_id=uuid.uuid4(), site=SITE, market=MARKET,
                          new_quantity_mwh=D(5), requested_at=T0)
    assert reasons(run(state, unknown)[1]) == [None]


@settings(max_examples=200, deadline=None)
@given(soc=st.integers(0, 1000).map(lambda x: D(x) / 10),
       orders=st.lists(st.tuples(st.sampled_from(Side),
                                 st.integers(1, 5000).map(lambda x: D(x) / 10000)),
                       max_size=25))
def test_soc_feasibility_never_approves_more_energy_than_the_site_has(
        soc: D, orders: list[tuple[Side, D]]) -> None:
    pol = policy()  # max power 10 MW, no position limits: only energy binds
    limits = pol.sites[SITE]
    state = given_events(telemetry(float(soc)))
    approved = {Side.BUY: D(0), Side.SELL: D(0)}
    for side, qty in orders:
        state, rejection = decide(state, submit(side, qty), T0, pol)
        if rejection is None:
            approved[side] += qty
        else:
            assert rejection.reason == ("soc_above_max" if side is Side.BUY else "soc_below_min")
    headroom = (limits.soc_max_pct - soc) / 100 * limits.capacity_mwh
    stored = (soc - limits.soc_min_pct) / 100 * limits.capacity_mwh
    assert approved[Side.BUY] * limits.charge_efficiency <= max(headroom, D(0))
    assert approved[Side.SELL] <= max(stored, D(0)) * limits.discharge_efficiency


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5_000), min_size=1, max_size=60))
def test_no_sliding_minute_of_event_time_holds_more_approvals_than_the_limit(
        gaps_ms: list[int]) -> None:
    pol = Policy.from_dict({"version": 7, "per_market_rps": {MARKET: 5},
                            "sites": {SITE: {"capacity_mwh": 100, "max_power_mw": 100}}})
    state, approved, at = fresh(), [], T0
    for gap in gaps_ms:
        at += timedelta(milliseconds=gap)
        state = evolve(state, telemetry(at=at), at)  # keep the SoC fresh
        state, rejection = decide(state, submit(Side.BUY, "0.001", at=at), at, pol)
        if rejection is None:
            approved.append(at)
        else:
            assert rejection.reason == "rate_limited"
            # rejected only when the window really is full
            assert sum(1 for t in approved if at - timedelta(seconds=60) < t <= at) == 5
    for t in approved:
        assert sum(1 for u in approved if t - timedelta(seconds=60) < u <= t) <= 5


def test_liquidity_provider_needs_no_telemetry_but_keeps_rate_and_kill_switch() -> None:
    import uuid
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal
    from pathlib import Path

    import yaml

    from domain.risk import Policy, RiskState, decide
    from schemas.trading import SetKillSwitch, Side, SubmitOrder

    policy = Policy.from_dict(yaml.safe_load(Path("policy/policy.yaml").read_text()))
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def order(i: int) -> SubmitOrder:
        start = now + timedelta(hours=1)
        return SubmitOrder(order_id=uuid.uuid4(), account="market-maker", site="market-maker",
                           market="EPEX_AT_INTRADAY_15MIN", side=Side.SELL,
                           quantity_mwh=Decimal("1"), limit_price_eur_mwh=Decimal("100"),
                           delivery_start=start, delivery_end=start + timedelta(minutes=15),
                           submitted_at=now + timedelta(milliseconds=i))

    state = RiskState(site="market-maker")
    for i in range(120):
        state, rejection = decide(state, order(i), now, policy)
        assert rejection is None
    state, rejection = decide(state, order(121), now, policy)
    assert rejection is not None and rejection.reason == "rate_limited"
    from domain.risk import evolve

    killed = evolve(RiskState(site="market-maker"),
                    SetKillSwitch(site="market-maker", engaged=True, requested_at=now), now)
    _, rejection = decide(killed, order(0), now, policy)
    assert rejection is not None and rejection.reason == "kill_switch_site"
