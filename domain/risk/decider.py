"""The pre-trade risk decider: `decide(state, command, now, policy)`.

A `SubmitOrder`, or a `ModifyOrder` that raises the quantity, runs every rule in this order,
the first rejection wins: unknown site, global and site kill switch, missing/stale telemetry,
temperature halt, rate limit (halved when hot), power, position per market and per site,
energy (SoC). An approved order is reserved in the open orders at once and its time enters
the market's rate window, so two quick orders cannot both spend the same headroom.

A `CancelOrder`, and a `ModifyOrder` that does not raise the quantity (lower quantity, new
price), always pass: they add no energy; a lowered quantity stays reserved until the
matching engine's `OrderModified`. A modify of an order the site does not hold passes too;
the matching engine rejects it (`unknown_order`).

`now` is the command's event time (its `submitted_at`/`requested_at` as the processor sees
it): the rate window and staleness are deterministic in event time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from domain.risk import exposure, rules
from domain.risk.config import Policy
from domain.risk.rules import Block, Rejection
from domain.risk.state import OpenOrder, RiskState, note_order, prune, put_order, replace
from schemas.trading import CancelOrder, ModifyOrder, OrderRejected, SetKillSwitch, SubmitOrder

RiskCommand = SubmitOrder | ModifyOrder | CancelOrder | SetKillSwitch


def decide(state: RiskState, command: RiskCommand, now: datetime,
           policy: Policy) -> tuple[RiskState, OrderRejected | None]:
    """The new state and None (approved: forward the command) or the rejection to publish."""
    state = prune(state, now)
    if isinstance(command, SubmitOrder):
        return _submit(state, command, now, policy)
    if isinstance(command, ModifyOrder):
        return _modify(state, command, now, policy)
    return state, None


def check(state: RiskState, market: str, candidate: Block, now: datetime,
          policy: Policy) -> Rejection | None:
    """Every rule for adding `candidate` (the energy an approval adds) on `market`."""
    limits = policy.sites.get(state.site)
    if limits is None:
        return rules.check_site_known(limits, state.site)
    if state.global_kill is not None:
        return rules.check_kill_switch_global(state.global_kill)
    if state.site_kill is not None:
        return rules.check_kill_switch_site(state.site_kill, state.site)
    side, qty = candidate.side, candidate.quantity_mwh
    rate = policy.per_market_rps.get(market, policy.default_orders_per_minute)
    if limits.liquidity_provider:
        return (rules.check_rate(state.recent_orders.get(market, ()), now, rate, market)
                or rules.check_position_market(
                    side, qty, state.positions_mwh.get(market, _ZERO),
                    exposure.open_mwh(state, side, market), limits.position_limit_mwh(market),
                    market))
    soc = state.soc_pct
    first = rules.check_telemetry(state.soc_time, now, limits)
    if first is not None or soc is None:
        return first
    temperature = state.temperature_c
    allowed = rules.allowed_orders_per_minute(rate, temperature, limits)
    first = (rules.check_temperature_halt(temperature, limits)
             or rules.check_rate(state.recent_orders.get(market, ()), now, allowed, market)
             or rules.check_power(candidate, exposure.blocks(state), limits))
    if first is not None:
        return first
    # the running totals of the open same-side orders, in this market and in all
    open_market = exposure.open_mwh(state, side, market)
    open_site = exposure.open_mwh(state, side)
    positions = state.positions_mwh
    committed = (open_site + exposure.delivering_mwh(state, side)) if state.deliveries \
        else open_site
    return (rules.check_position_market(
                side, qty, positions.get(market, _ZERO), open_market,
                limits.position_limit_mwh(market), market)
            or rules.check_position_site(
                side, qty, sum(positions.values(), _ZERO) if positions else _ZERO, open_site,
                limits.site_position_limit_mwh)
            or rules.check_energy(side, qty, committed, soc, limits))


_ZERO = Decimal(0)


def _submit(state: RiskState, cmd: SubmitOrder, now: datetime,
            policy: Policy) -> tuple[RiskState, OrderRejected | None]:
    candidate = Block(cmd.side, cmd.quantity_mwh, cmd.delivery_start, cmd.delivery_end)
    rejection = check(state, cmd.market, candidate, now, policy)
    if rejection is not None:
        return state, _rejected(cmd.order_id, state.site, cmd.market, cmd.account, rejection,
                                now)
    order = OpenOrder(cmd.market, cmd.side, cmd.quantity_mwh, cmd.quantity_mwh,
                      cmd.delivery_start, cmd.delivery_end)
    return _approved(state, cmd.market, now, cmd.order_id, order), None


def _modify(state: RiskState, cmd: ModifyOrder, now: datetime,
            policy: Policy) -> tuple[RiskState, OrderRejected | None]:
    order = state.open_orders.get(cmd.order_id)
    new_qty = cmd.new_quantity_mwh
    if order is None or new_qty is None or new_qty <= order.quantity_mwh:
        return state, None
    raise_mwh = new_qty - order.quantity_mwh
    candidate = Block(order.side, raise_mwh, order.delivery_start, order.delivery_end)
    rejection = check(state, order.market, candidate, now, policy)
    if rejection is not None:
        return state, _rejected(cmd.order_id, state.site, order.market, None, rejection, now)
    previous = order.quantity_mwh if order.previous_quantity_mwh is None \
        else order.previous_quantity_mwh
    raised = replace(order, quantity_mwh=new_qty, remaining_mwh=order.remaining_mwh + raise_mwh,
                     previous_quantity_mwh=previous)
    return _approved(state, order.market, now, cmd.order_id, raised), None


def _approved(state: RiskState, market: str, now: datetime, order_id: uuid.UUID,
              order: OpenOrder) -> RiskState:
    return note_order(put_order(state, order_id, order), market, now)


def _rejected(order_id: uuid.UUID, site: str, market: str, account: str | None,
              rejection: Rejection, now: datetime) -> OrderRejected:
    return OrderRejected(order_id=order_id, site=site, market=market, account=account,
                         stage="risk", reason=rejection.reason, detail=rejection.detail,
                         rejected_at=now)
