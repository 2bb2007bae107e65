"""The topic catalog: every Kafka topic of the system with its key, partitions and retention.

Topic names follow ``<area>.<dataset>.v<N>``; every topic has a dead-letter sibling
``<name>.dlq`` carrying `MessageDeadLettered`. `bess topics` creates them all with these configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.base import Payload
from schemas.clock import ClockTicked
from schemas.dead_letter import MessageDeadLettered
from schemas.ems import (
    DispatchFailed,
    DispatchPlanned,
    ForecastPublished,
    SetStrategy,
    StrategySelected,
)
from schemas.market import MarketIndicatorsUpdated, PriceTickReceived
from schemas.telemetry import (
    ConfigureModbusGateway,
    ConfigureMqttGateway,
    DeviceOffline,
    DeviceOnline,
    GatewayConfigApplied,
    SetpointDelivered,
    SetpointIssued,
    TelemetryReceived,
)
from schemas.trading import ORDER_COMMANDS, ORDER_EVENTS, TradeExecuted

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    """One Kafka topic: name, record key, partitions, retention and the payloads it carries."""

    name: str
    key: str
    partitions: int
    payloads: tuple[type[Payload], ...]
    description: str
    retention_ms: int = -1
    cleanup_policy: str = "delete"
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def config(self) -> dict[str, str]:
        """Topic-level Kafka configs."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.extra_config,
        }


PRICE_TICKS = Topic(
    name="market.price-ticks.v1",
    key="market",
    partitions=3,
    payloads=(PriceTickReceived,),
    description="Market prices per delivery period from files, ENTSO-E, aWATTar and venues.",
)
INDICATORS = Topic(
    name="market.indicators.v1",
    key="market",
    partitions=3,
    payloads=(MarketIndicatorsUpdated,),
    description="Mark price, EMA and VWAP per market after each tick or trade.",
)

ORDER_COMMANDS_TOPIC = Topic(
    name="trading.order-commands.v1",
    key="site (global kill switch: every partition)",
    partitions=3,
    payloads=ORDER_COMMANDS,
    description="SubmitOrder/CancelOrder/ModifyOrder/SetKillSwitch from the API, the EMS and "
                "the market maker; checked by pre-trade risk.",
)
MATCHING_INBOX = Topic(
    name="trading.matching-inbox.v1",
    key="market",
    partitions=3,
    payloads=ORDER_COMMANDS,
    description="Order commands that passed pre-trade risk, keyed by market for the matching "
                "engine.",
)
ORDER_EVENTS_TOPIC = Topic(
    name="trading.order-events.v1",
    key="site",
    partitions=3,
    payloads=ORDER_EVENTS,
    description="Order lifecycle: accepted, rejected (with reason), modified, partially filled, "
                "filled, cancelled, expired.",
)
TRADES = Topic(
    name="trading.trades.v1",
    key="market",
    partitions=3,
    payloads=(TradeExecuted,),
    description="Executed trades (both sides, price rule, aggressor).",
)

TELEMETRY_READINGS = Topic(
    name="telemetry.readings.v1",
    key="site",
    partitions=3,
    payloads=(TelemetryReceived,),
    description="Device readings (SoC, power, temperature, ...) from Modbus, MQTT and REST.",
    retention_ms=30 * DAY_MS,
)
DEVICE_STATUS = Topic(
    name="telemetry.device-status.v1",
    key="site",
    partitions=3,
    payloads=(DeviceOffline, DeviceOnline, SetpointDelivered),
    description="Device availability seen by the gateways, and setpoint delivery reports.",
)
SETPOINTS = Topic(
    name="control.setpoints.v1",
    key="site",
    partitions=3,
    payloads=(SetpointIssued,),
    description="Active power setpoints per site, written to the devices by the gateways.",
)
GATEWAY_CONFIG = Topic(
    name="telemetry.gateway-config.v1",
    key="gateway: modbus, mqtt (commands, a tombstone reverts to the environment's); "
        "modbus.applied, mqtt.applied (reports)",
    partitions=1,
    payloads=(ConfigureModbusGateway, ConfigureMqttGateway, GatewayConfigApplied),
    description="Gateway configuration set at run time (POST /api/modbus/config, "
                "/api/mqtt/config) and the gateways' reports of applying it; compacted, the "
                "latest record per key is the current state.",
    cleanup_policy="compact",
)

FORECASTS = Topic(
    name="ems.forecasts.v1",
    key="site",
    partitions=3,
    payloads=(ForecastPublished,),
    description="Price, load and PV forecasts per site with quantiles (P10/P50/P90).",
    retention_ms=30 * DAY_MS,
)
PLANS = Topic(
    name="ems.plans.v1",
    key="site",
    partitions=3,
    payloads=(DispatchPlanned, DispatchFailed, StrategySelected),
    description="Dispatch plans (power and SoC per step, expected profit), failed plans and "
                "strategy changes.",
)
EMS_COMMANDS = Topic(
    name="ems.commands.v1",
    key="site",
    partitions=3,
    payloads=(SetStrategy,),
    description="Strategy commands from the API (manual strategy or auto selection).",
)

CLOCK = Topic(
    name="system.clock.v1",
    key="clock (one copy per partition)",
    partitions=3,
    payloads=(ClockTicked,),
    description="Event time for schedules: the replayed market clock or the wall clock.",
    retention_ms=7 * DAY_MS,
)

TOPICS: tuple[Topic, ...] = (
    PRICE_TICKS, INDICATORS, ORDER_COMMANDS_TOPIC, MATCHING_INBOX, ORDER_EVENTS_TOPIC, TRADES,
    TELEMETRY_READINGS, DEVICE_STATUS, SETPOINTS, GATEWAY_CONFIG, FORECASTS, PLANS, EMS_COMMANDS,
    CLOCK,
)


def dlq_topic(topic: Topic) -> Topic:
    """The dead-letter sibling of `topic` (one partition, 30 days retention)."""
    return Topic(
        name=topic.dlq,
        key="original topic:partition",
        partitions=1,
        payloads=(MessageDeadLettered,),
        description=f"Messages of {topic.name} that could not be processed, with the reason.",
        retention_ms=30 * DAY_MS,
    )


def all_topics() -> tuple[Topic, ...]:
    """Every topic including the dead-letter topics."""
    return TOPICS + tuple(dlq_topic(t) for t in TOPICS)


def by_name(name: str) -> Topic:
    """Look a topic up by name. Raises KeyError for an unknown name."""
    for topic in all_topics():
        if topic.name == name:
            return topic
    raise KeyError(name)


def internal_topics() -> tuple[Topic, ...]:
    """Compacted changelogs of the stream processors' state (`streams.runtime`): not a
    contract for other teams, created with the catalog so that they exist before any worker."""
    return tuple(
        Topic(name=f"bess-{name}-state", key="processor state key", partitions=3, payloads=(),
              description=f"State changelog of the {name} processor.", cleanup_policy="compact")
        for name in ("indicators", "risk", "matching", "forecaster", "dispatch"))
