"""Wiring of the pre-trade risk processor (keyed by site).

Consumes ``trading.order-commands.v1``, ``telemetry.readings.v1`` and ``trading.order-events.v1``
(all keyed by site, co-partitioned). Telemetry and order events evolve the site's `RiskState`;
order commands are decided by `domain.risk.decide`: a rejection is published as `OrderRejected`
(stage ``risk``) on the order-events topic, an approved command is forwarded to
``trading.matching-inbox.v1`` keyed by market. The state lives in a faust table (changelog), so
the processor resumes exactly where it stopped; everything runs exactly-once.

A global kill switch (`SetKillSwitch` with no site) arrives on every partition; it is kept under
the table key ``*`` and applied to every site's decisions; partition 0 forwards it to every
partition of the matching inbox so that resting orders are cancelled everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import faust
import orjson
import yaml

from domain.risk import Policy, RiskState, decide, evolve
from infra.metrics import EVENTS, ORDERS
from infra.settings import Settings
from schemas.catalog import MATCHING_INBOX, ORDER_COMMANDS_TOPIC, ORDER_EVENTS_TOPIC
from schemas.envelope import caused_by, encode, headers, new_envelope
from schemas.telemetry import TelemetryReceived
from schemas.trading import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    CancelOrder,
    ModifyOrder,
    SetKillSwitch,
    SubmitOrder,
)
from streams.common import create_faust_app, decode_or_dead_letter

NAME = "risk"
SOURCE = "streams.risk"
TELEMETRY_TOPIC = "telemetry.readings.v1"
GLOBAL = b"*"


def load_policy(path: Path) -> Policy:
    """Read and validate ``policy.yaml``. Raises PolicyError / OSError with the reason."""
    return Policy.from_dict(yaml.safe_load(path.read_text()))


def command_time(command: Any) -> Any:
    return getattr(command, "submitted_at", None) or command.requested_at


def create_app(settings: Settings, web_port: int | None = None) -> faust.App:
    app = create_faust_app(NAME, settings, web_port=web_port)
    policy = load_policy(settings.policy_file)
    source = app.topic(ORDER_COMMANDS_TOPIC.name, TELEMETRY_TOPIC, ORDER_EVENTS_TOPIC.name,
                       key_serializer="raw", value_serializer="raw", internal=False)
    order_events = app.topic(ORDER_EVENTS_TOPIC.name, key_serializer="raw",
                             value_serializer="raw", internal=False)
    inbox = app.topic(MATCHING_INBOX.name, key_serializer="raw", value_serializer="raw",
                      internal=False)
    dlqs = {t: app.topic(f"{t}.dlq", key_serializer="raw", value_serializer="raw", internal=False)
            for t in (ORDER_COMMANDS_TOPIC.name, TELEMETRY_TOPIC, ORDER_EVENTS_TOPIC.name)}
    states = app.Table("risk-state", default=None, partitions=ORDER_COMMANDS_TOPIC.partitions)
    accepted = (*ORDER_COMMANDS, *ORDER_EVENTS, TelemetryReceived)

    def load(site: str) -> RiskState:
        raw = states.get(site.encode())
        state = RiskState.from_dict(orjson.loads(raw)) if raw else RiskState(site=site)
        global_raw = states.get(GLOBAL)
        global_kill = RiskState.from_dict(orjson.loads(global_raw)).global_kill if global_raw else None
        return replace(state, global_kill=global_kill)

    def store(state: RiskState) -> None:
        states[state.site.encode()] = orjson.dumps(state.to_dict())

    @app.agent(source, name="risk")
    async def process(stream: Any) -> None:
        async for event in stream.events():
            topic = event.message.topic
            EVENTS.labels(NAME, topic).inc()
            envelope = await decode_or_dead_letter(event, NAME, dlqs[topic], accepted)
            if envelope is None:
                continue
            payload = envelope.payload
            if isinstance(payload, SetKillSwitch) and payload.site is None:
                current = load("*")
                store(evolve(current, payload, payload.requested_at))
                if event.message.partition == 0:
                    for partition in range(MATCHING_INBOX.partitions):
                        out = caused_by(envelope, payload, source=SOURCE)
                        await inbox.send(key=GLOBAL, value=encode(out), partition=partition,
                                         headers=headers(out))
                continue
            site = getattr(payload, "site", None)
            if site is None:
                continue
            state = load(site)
            if isinstance(payload, SubmitOrder | ModifyOrder | CancelOrder):
                now = command_time(payload)
                state, rejection = decide(state, payload, now, policy)
                store(state)
                if rejection is not None:
                    out = caused_by(envelope, rejection, source=SOURCE, occurred_at=now)
                    await order_events.send(key=site.encode(), value=encode(out),
                                            headers=headers(out))
                    ORDERS.labels("risk", rejection.reason).inc()
                else:
                    out = new_envelope(payload, occurred_at=now, source=SOURCE,
                                       correlation_id=envelope.correlation_id or envelope.event_id,
                                       causation_id=envelope.event_id, key=payload.market)
                    await inbox.send(key=payload.market.encode(), value=encode(out),
                                     headers=headers(out))
            elif isinstance(payload, SetKillSwitch):
                store(evolve(state, payload, payload.requested_at))
                out = caused_by(envelope, payload, source=SOURCE)
                for partition in range(MATCHING_INBOX.partitions):  # resting orders anywhere
                    await inbox.send(key=site.encode(), value=encode(out), partition=partition,
                                     headers=headers(out))
            else:
                store(evolve(state, payload, envelope.occurred_at))

    return app
