"""domain.risk.state: evolve over order events, fills and deliveries; to_dict/from_dict."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.risk import Policy, RiskState, decide, evolve, state_from_dict, state_to_dict
from domain.risk.exposure import committed_mwh
from schemas.telemetry import TelemetryReceived
from schemas.trading import (
    ModifyOrder,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    SetKillSwitch,
    Side,
    SubmitOrder,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DELIVERY = T0 + timedelta(hours=1)
SITE, MARKET = "site-1", "EPEX_AT_INTRADAY_15MIN"
POLICY = Policy.from_dict({"version": 7, "sites": {SITE: {"capacity_mwh": 2,
                                                          "max_power_mw": 10}}})


def telemetry(soc: float, at: datetime = T0) -> TelemetryReceived:
    return TelemetryReceived(site=SITE, device_id="bms", source="modbus", device_time=at,
                             received_at=at, soc_pct=soc, temperature_c=25.0)


def submit(side: Side, qty: str) -> SubmitOrder:
    return SubmitOrder(order_id=uuid.uuid4(), account="acc", site=SITE, market=MARKET,
                       side=side, quantity_mwh=D(qty), limit_price_eur_mwh=D(50),
                       delivery_start=DELIVERY, delivery_end=DELIVERY + timedelta(hours=1),
                       submitted_at=T0)


def with_order(side: Side = Side.BUY, qty: str = "0.5") -> tuple[RiskState, SubmitOrder]:
    cmd = submit(side, qty)
    state, rejection = decide(evolve(RiskState(SITE), telemetry(50.0), T0), cmd, T0, POLICY)
    assert rejection is None
    return state, cmd


def fill(cmd: SubmitOrder, qty: str, filled: str, remaining: str,
         final: bool = False) -> OrderPartiallyFilled | OrderFilled:
    kind = OrderFilled if final else OrderPartiallyFilled
    return kind(order_id=cmd.order_id, account="acc", site=SITE, market=MARKET,
                trade_id=uuid.uuid4(), side=cmd.side, fill_quantity_mwh=D(qty),
                fill_price_eur_mwh=D(50), filled_quantity_mwh=D(filled),
                remaining_quantity_mwh=D(remaining), executed_at=T0)


def matching_rejection(cmd: SubmitOrder, stage: str = "matching") -> OrderRejected:
    return OrderRejected.model_validate({
        "order_id": cmd.order_id, "site": SITE, "market": MARKET, "stage": stage,
        "reason": "gate_closed", "rejected_at": T0})


def test_cancel_expiry_and_matching_rejection_release_the_reservation() -> None:
    state, cmd = with_order()
    for event in (
        OrderCancelled(order_id=cmd.order_id, account="acc", site=SITE, market=MARKET,
                       remaining_quantity_mwh=D("0.5"), reason="requested", cancelled_at=T0),
        OrderExpired(order_id=cmd.order_id, account="acc", site=SITE, market=MARKET,
                     remaining_quantity_mwh=D("0.5"), expired_at=T0),
        matching_rejection(cmd),
    ):
        assert committed_mwh(evolve(state, event, T0), Side.BUY) == 0
    assert evolve(state, matching_rejection(cmd, stage="risk"), T0) == state


def test_events_of_other_sites_change_nothing() -> None:
    state, _ = with_order()
    foreign = TelemetryReceived(site="site-2", device_id="bms", source="modbus",
                                device_time=T0 + timedelta(seconds=1), received_at=T0,
                                soc_pct=1.0)
    assert evolve(state, foreign, T0) == state


def test_fills_move_the_position_and_stay_committed_until_delivered() -> None:
    state, cmd = with_order(Side.BUY, "0.5")
    state = evolve(state, fill(cmd, "0.2", "0.2", "0.3"), T0)
    assert state.positions_mwh == {MARKET: D("0.2")}
    assert state.open_orders[cmd.order_id].remaining_mwh == D("0.3")
    assert committed_mwh(state, Side.BUY) == D("0.5")  # 0.3 open + 0.2 to deliver
    assert evolve(state, fill(cmd, "0.2", "0.2", "0.3"), T0) == state  # duplicate fill
    state = evolve(state, fill(cmd, "0.3", "0.5", "0", final=True), T0)
    assert cmd.order_id not in state.open_orders
    assert state.positions_mwh == {MARKET: D("0.5")}
    assert committed_mwh(state, Side.BUY) == D("0.5")
    # a reading half-way through the delivery hour reflects half of it
    state = evolve(state, telemetry(60.0, DELIVERY + timedelta(minutes=30)), T0)
    assert committed_mwh(state, Side.BUY) == D("0.25")
    # a reading after the delivery reflects all of it; the delivery is forgotten
    state = evolve(state, telemetry(62.0, DELIVERY + timedelta(hours=1)), T0)
    assert committed_mwh(state, Side.BUY) == 0 and state.deliveries == {}
    assert state.positions_mwh == {MARKET: D("0.5")}


def test_sells_make_the_position_negative() -> None:
    state, cmd = with_order(Side.SELL, "0.3")
    state = evolve(state, fill(cmd, "0.3", "0.3", "0", final=True), T0)
    assert state.positions_mwh == {MARKET: D("-0.3")}


def test_a_matching_rejection_of_a_raise_reverts_only_the_raise() -> None:
    state, cmd = with_order(Side.BUY, "0.5")
    raise_ = ModifyOrder(order_id=cmd.order_id, site=SITE, market=MARKET,
                         new_quantity_mwh=D("0.7"), requested_at=T0)
    raised, rejection = decide(state, raise_, T0, POLICY)
    assert rejection is None and committed_mwh(raised, Side.BUY) == D("0.7")
    reverted = evolve(raised, matching_rejection(cmd), T0)
    assert reverted.open_orders[cmd.order_id] == state.open_orders[cmd.order_id]
    confirmed = evolve(raised, OrderModified(
        order_id=cmd.order_id, account="acc", site=SITE, market=MARKET, quantity_mwh=D("0.7"),
        limit_price_eur_mwh=D(50), remaining_quantity_mwh=D("0.7"), lost_priority=True,
        modified_at=T0), T0)
    order = confirmed.open_orders[cmd.order_id]
    assert (order.quantity_mwh, order.previous_quantity_mwh) == (D("0.7"), None)


def test_to_dict_round_trip_is_json_safe() -> None:
    state, cmd = with_order(Side.BUY, "0.5")
    state = evolve(state, fill(cmd, "0.2", "0.2", "0.3"), T0)
    state = evolve(state, SetKillSwitch(site=SITE, engaged=True, reason="x", requested_at=T0),
                   T0)
    state = evolve(state, SetKillSwitch(engaged=True, requested_at=T0), T0)
    data = json.loads(json.dumps(state.to_dict()))
    assert RiskState.from_dict(data) == state
    assert state_from_dict(state_to_dict(RiskState(SITE))) == RiskState(SITE)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(Side), st.integers(1, 300), st.integers(0, 100),
                          st.booleans()), max_size=12),
       st.floats(0, 100, allow_nan=False))
def test_round_trip_of_random_states(ops: list[tuple[Side, int, int, bool]],
                                     soc: float) -> None:
    state = evolve(RiskState(SITE), telemetry(soc), T0)
    for i, (side, qty, fill_pct, engage) in enumerate(ops):
        cmd = submit(side, str(D(qty) / 1000))
        now = T0 + timedelta(seconds=i)
        state, rejection = decide(state, cmd, now, POLICY)
        if rejection is None and fill_pct:
            done = cmd.quantity_mwh * fill_pct / 100
            state = evolve(state, fill(cmd, str(done), str(done),
                                       str(cmd.quantity_mwh - done), final=fill_pct == 100), now)
        state = evolve(state, SetKillSwitch(site=SITE, engaged=engage, requested_at=now), now)
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state
