"""Wiring of the pre-trade risk processor (keyed by site).

Consumes ``trading.order-commands.v1``, ``telemetry.readings.v1`` and ``trading.order-events.v1``
(all keyed by site, co-partitioned). Telemetry and order events evolve the site's `RiskState`;
order commands are decided by `domain.risk.decide`: a rejection is published as `OrderRejected`
(stage ``risk``) on the order-events topic, an approved command is forwarded to
``trading.matching-inbox.v1`` keyed by market. State, outputs and offsets commit together
(`streams.runtime`), so the processor resumes exactly where it stopped.

The changelog is incremental (`domain.risk.codec`): a batch writes, for each site it touched,
only the records that changed (the site's head, an order, a delivery period, a rate window;
tombstones for closed orders, delivered periods and emptied windows), never the whole state.

A global kill switch (`SetKillSwitch` with no site) arrives on every partition; it is kept under
the state of the site ``*`` and applied to every site's decisions; partition 0 forwards it to every
partition of the matching inbox so that resting orders are cancelled everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from domain.risk import Policy, RiskState, changelog, decide, evolve
from domain.risk import restore as restore_states
from domain.risk.state import replace
from infra.metrics import ORDERS
from infra.settings import Settings
from schemas.catalog import MATCHING_INBOX, ORDER_COMMANDS_TOPIC, ORDER_EVENTS_TOPIC
from schemas.envelope import caused_by
from schemas.telemetry import TelemetryReceived
from schemas.trading import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    CancelOrder,
    ModifyOrder,
    SetKillSwitch,
    SubmitOrder,
)
from streams.codec import Parent, follow_up
from streams.runtime import Emit, Output, Processor, Runtime

NAME = "risk"
SOURCE = "streams.risk"
TELEMETRY_TOPIC = "telemetry.readings.v1"
GLOBAL = "*"
ACCEPTED: tuple[type, ...] = (*ORDER_COMMANDS, *ORDER_EVENTS, TelemetryReceived)


def load_policy(path: Path) -> Policy:
    """Read and validate ``policy.yaml``. Raises PolicyError / OSError with the reason."""
    return Policy.from_dict(yaml.safe_load(path.read_text()))


def command_time(command: Any) -> Any:
    return getattr(command, "submitted_at", None) or command.requested_at


class RiskProcessor(Processor):
    name = NAME
    inputs = (ORDER_COMMANDS_TOPIC.name, TELEMETRY_TOPIC, ORDER_EVENTS_TOPIC.name)
    partitions = ORDER_COMMANDS_TOPIC.partitions

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.states: dict[int, dict[str, RiskState]] = {}

    def restore(self, partition: int, state: dict[bytes, bytes]) -> None:
        """Rebuild the site states from the changelog records (`domain.risk.codec`). Records
        of the old whole-state format raise `ChangelogFormatError`: the worker stops, with
        the message saying how to rebuild the topic."""
        self.states[partition] = restore_states(
            (k.decode(), orjson.loads(v)) for k, v in state.items())

    def revoke(self, partition: int) -> None:
        self.states.pop(partition, None)

    def handle(self, partition: int, records: Sequence[Any], out: Output) -> None:
        states = self.states.setdefault(partition, {})
        # the state of every site this batch touches as the changelog holds it (None: not
        # there): the batch writes only the difference
        before: dict[str, RiskState | None] = {}

        glob = states.get(GLOBAL)

        def load(site: str) -> RiskState:
            state = states.get(site)
            if site not in before:
                before[site] = state
            if state is None:
                state = RiskState(site=site)
            kill = glob.global_kill if glob else None
            return state if state.global_kill == kill else replace(state, global_kill=kill)

        for record in records:
            envelope = self.decode(record, out, ACCEPTED)
            if envelope is None:
                continue
            payload = envelope.payload
            if isinstance(payload, SetKillSwitch) and payload.site is None:
                states[GLOBAL] = glob = evolve(load(GLOBAL), payload, payload.requested_at)
                if partition == 0:
                    fwd = caused_by(envelope, payload, source=SOURCE)
                    out.emits.extend(Emit.envelope(MATCHING_INBOX.name, fwd, partition=p)
                                     for p in range(MATCHING_INBOX.partitions))
                continue
            site = getattr(payload, "site", None)
            if site is None:
                continue
            state = load(site)
            if isinstance(payload, SubmitOrder | ModifyOrder | CancelOrder):
                now = command_time(payload)
                state, rejection = decide(state, payload, now, self.policy)
                if rejection is not None:
                    out.emits.append(Emit(ORDER_EVENTS_TOPIC.name, *follow_up(
                        Parent(envelope), rejection, SOURCE, now)))
                    ORDERS.labels("risk", rejection.reason).inc()
                else:  # forwarded keyed by market, otherwise as `caused_by`
                    out.emits.append(Emit(MATCHING_INBOX.name, *follow_up(
                        Parent(envelope), payload, SOURCE, now, key=payload.market)))
            elif isinstance(payload, SetKillSwitch):
                state = evolve(state, payload, payload.requested_at)
                fwd = caused_by(envelope, payload, source=SOURCE)
                out.emits.extend(Emit.envelope(MATCHING_INBOX.name, fwd, partition=p)
                                 for p in range(MATCHING_INBOX.partitions))
            else:
                state = evolve(state, payload, envelope.occurred_at)
            states[site] = state
        for site, old in before.items():
            for key, value in changelog(old, states[site]).items():
                out.state[key.encode()] = None if value is None else orjson.dumps(value)


def create_runtime(settings: Settings) -> Runtime:
    return Runtime(RiskProcessor(load_policy(settings.policy_file)), settings.bootstrap)
