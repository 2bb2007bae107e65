"""`bess up`: the embedded default on one machine, supervised.

Starts what is not configured externally (Kafka, Postgres, Mosquitto), creates the topics and
then runs every service as its own process (the same commands a deployment runs one per
container): the processors, the projector, the market-data gateway and the API. A service that
dies is restarted with backoff; Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.kafka_io import ensure_topics
from infra.local.kafka import KafkaServer
from infra.local.mosquitto import MosquittoServer
from infra.local.postgres import PostgresServer
from infra.local.process import ManagedProcess
from infra.local.telemetry_services import telemetry_commands
from infra.logging import get_logger
from infra.settings import Settings

log = get_logger("infra.stack")


@dataclass
class Infra:
    """The embedded services started for one stack and the environment pointing at them."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[KafkaServer | PostgresServer | MosquittoServer] = field(default_factory=list)

    def stop(self) -> None:
        for service in reversed(self.started):
            service.stop()
        self.started.clear()


def start_infra(settings: Settings, *, fsync: bool = True, mqtt: bool = True) -> Infra:
    """Start embedded Kafka/Postgres/Mosquitto where no external address is configured."""
    infra = Infra(home=settings.home)
    try:
        if settings.postgres_embedded:
            pg = PostgresServer(settings.home / "postgres", port=settings.postgres_port,
                                fsync=fsync)
            pg.start()
            infra.started.append(pg)
            log.info("postgres ready", dsn=pg.dsn)
        infra.env["BESS_POSTGRES_DSN"] = settings.dsn
        if settings.kafka_embedded:
            kafka = KafkaServer(settings.home / "kafka", port=settings.kafka_port,
                                controller_port=settings.kafka_controller_port,
                                heap=settings.kafka_heap)
            kafka.start()
            infra.started.append(kafka)
            log.info("kafka ready", bootstrap=kafka.bootstrap)
        infra.env["BESS_KAFKA_BOOTSTRAP"] = settings.bootstrap
        if mqtt and settings.mqtt_embedded:
            broker = MosquittoServer(settings.home / "mosquitto", port=settings.mqtt_port)
            broker.start()
            infra.started.append(broker)
            log.info("mosquitto ready", port=settings.mqtt_port)
        infra.env["BESS_MQTT_HOST"] = settings.mqtt_host or "127.0.0.1"
        infra.env["BESS_MQTT_PORT"] = str(settings.mqtt_port)
    except BaseException:
        infra.stop()
        raise
    return infra


def service_commands(settings: Settings, replay: bool = True) -> dict[str, list[str]]:
    """The app services of `bess up`: name -> argv."""
    py = [sys.executable, "-m", "infra.cli"]
    commands = {
        "indicators": [*py, "worker", "indicators", "--web-port", "6066"],
        "risk": [*py, "worker", "risk", "--web-port", "6067"],
        "matching": [*py, "worker", "matching", "--web-port", "6068"],
        "forecaster": [*py, "worker", "forecaster", "--web-port", "6069"],
        "dispatch": [*py, "worker", "dispatch", "--web-port", "6070"],
        "market-maker": [*py, "gateway", "market-maker"],
        "projector": [*py, "projector", "all"],
        "api": [*py, "api"],
    }
    if replay:
        commands["market-data"] = [*py, "gateway", "market-data", "--source", "file"]
        # the EMS trades in the replay's event time: quote the periods it trades
        commands["market-maker-replay"] = [*py, "gateway", "market-maker", "--clock", "market",
                                           "--site", "market-maker-replay"]
    commands.update(telemetry_commands(  # simulated batteries, gateways
        settings, py, speed=settings.replay_speed if replay else 1.0))
    return commands


async def supervise(settings: Settings, replay: bool = True) -> None:
    """Run `bess up` until SIGINT/SIGTERM."""
    infra = await asyncio.to_thread(start_infra, settings)
    prom_dir = settings.home / "prometheus"
    shutil.rmtree(prom_dir, ignore_errors=True)
    prom_dir.mkdir(parents=True)
    env = {**infra.env, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir), "BESS_LOG_JSON": "true"}
    children: dict[str, ManagedProcess] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        created = await ensure_topics(settings.bootstrap)
        log.info("topics ready", created=created)
        for name, argv in service_commands(settings, replay).items():
            children[name] = ManagedProcess(name, argv, settings.home / "logs" / f"{name}.log", env)
            children[name].start()
        log.info("bess is up", api=f"http://{settings.api_host}:{settings.api_port}",
                 docs=f"http://{settings.api_host}:{settings.api_port}/docs",
                 logs=str(settings.home / "logs"), kafka=settings.bootstrap)
        restarts: dict[str, float] = {}
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
            for name, child in children.items():
                if stop.is_set() or child.running:
                    continue
                if name == "market-data" and child.proc is not None and child.proc.returncode == 0:
                    continue  # the replay reached the end of the file
                backoff = min(30.0, 2 * restarts.get(name + ":n", 0) + 1)
                if time.monotonic() - restarts.get(name, 0) < backoff:
                    continue
                log.warning("service exited, restarting", service=name,
                            code=child.proc.returncode if child.proc else None, tail=child.tail(5))
                restarts[name] = time.monotonic()
                restarts[name + ":n"] = restarts.get(name + ":n", 0) + 1
                child.start()
    finally:
        log.info("stopping")
        for child in reversed(list(children.values())):
            await asyncio.to_thread(child.stop)
        await asyncio.to_thread(infra.stop)
