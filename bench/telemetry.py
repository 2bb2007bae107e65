"""Telemetry benchmark: gateways against same-run references.

``.venv/bin/python -m bench.telemetry [--messages N] [--seconds S] [--devices D]
[--rounds R] [--qos 0|1] [--only mqtt|modbus|skew ...]``

Set-up: embedded Kafka, Postgres (fsync off) and Mosquitto on free ports in a temp dir (or
BESS_KAFKA_BOOTSTRAP / BESS_POSTGRES_DSN when set). Publishers and Modbus servers run in child
processes so they do not share the measuring process's CPU.

1. MQTT: a paho-mqtt publisher process sends N site-telemetry messages (QoS 0, or `--qos 1`;
   4 quantities each) as fast as it can, once per measurement, to the same broker.
   Reference: a bare paho-mqtt subscriber (threaded loop, counts messages); for comparison
   once a bare aiomqtt subscriber. The gateway (`MqttGateway.run`: paho-mqtt driven by the
   event loop, batches, parse, validate, dedup, envelope bytes, aiokafka record batches, QoS 1
   acknowledgements after Kafka's, with the producer and publisher of `run_gateway`) is timed
   from its first message to the broker's ack of the last event, with the process's CPU time
   per reading. `--rounds` rounds of (reference, gateway) alternate, so both see the same
   machine load; medians. Then the telemetry projection applies all those events to Postgres
   (timed catch_up).
2. Modbus: the device simulator (pymodbus server, predecessor map) in a child process.
   Reference: a raw-socket client (hand-built MBAP frames, asyncio streams, one request in
   flight). Poller: the gateway's `ModbusReader.read()` (pymodbus client + profile decode), and
   the full `DevicePoller.poll_once()` (read, decode, validate, publish to Kafka). Sequential
   polls for S seconds each.
3. Skew: D simulated devices (D pymodbus servers in one child process) polled by the gateway at
   1 Hz for S seconds; per tick, the spread of the poll start times across devices (that is the
   spread of the readings' device times) and the lateness against the tick.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import paho.mqtt.client as paho

from gateways.modbus.gateway import DevicePoller, run_gateway
from gateways.mqtt.gateway import MqttGateway, make_gateway_producer, topic_config
from gateways.telemetry.publisher import TelemetryPublisher
from infra.kafka_io import ensure_topics, make_producer
from infra.local.kafka import KafkaServer
from infra.local.postgres import PostgresServer
from infra.local.process import ManagedProcess, free_port
from infra.modbus import ModbusDevice, ModbusReader, load_profile
from infra.settings import PROJECT_ROOT, Settings
from projections.framework import ProjectionRunner
from projections.telemetry import TelemetryProjection

PUBLISHER = """
import json, sys, time
import asyncpg
import paho.mqtt.client as paho
port, topic, n, qos = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-pub")
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
time.sleep(0.5)
for i in range(n):
    c.publish(topic, json.dumps({"device_id": f"d{i % 50}", "timestamp": 1737837000 + i * 0.001,
                                 "soc_pct": 50 + (i % 400) / 10, "active_power_mw": 1.5,
                                 "temperature_c": 25.0, "frequency_hz": 50.0}), qos=qos)
    if i % 2000 == 0:
        time.sleep(0.001)
time.sleep(1)
c.loop_stop()
c.disconnect()
"""

SERVERS = """
import asyncio, sys
from gateways.simulator.device import SimulatedBattery
from infra.modbus import load_profile
from domain.telemetry.battery import BatteryState
async def main(base, n):
    sims = []
    for i in range(n):
        s = SimulatedBattery(f"s{i}", f"d{i}", load_profile("default"),
                             state=BatteryState(soc_pct=75.0, power_mw=2.5, temperature_c=28.3))
        await s.start_modbus("127.0.0.1", base + i)
        sims.append(s)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def start_broker(data_dir: Path) -> ManagedProcess:
    """Mosquitto with deep per-client queues, so a subscriber slower than the publisher
    lags instead of losing QoS 0 messages (the default queue holds 1000)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = data_dir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 10000000\nmax_queued_bytes 0\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = ManagedProcess("mosquitto", [binary, "-c", str(conf)], data_dir / "mosquitto.log")
    proc.start()
    proc.wait_port("127.0.0.1", port, 15)
    proc.port = port  # type: ignore[attr-defined]
    return proc


def child(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BESS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def bare_paho(port: int, topic: str, n: int, publish: Any) -> dict[str, Any]:
    got = {"n": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        now = time.perf_counter()
        if got["n"] == 0:
            got["first"] = now
        got["n"] += 1
        got["last"] = now
        if got["n"] >= n:
            done.set()

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex}")
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    time.sleep(0.5)
    proc = publish()
    done.wait(120)
    proc.wait()
    c.loop_stop()
    c.disconnect()
    elapsed = got["last"] - got["first"]
    return {"n": got["n"], "s": elapsed, "rate": got["n"] / elapsed if elapsed else 0.0}


async def bare_aiomqtt(port: int, topic: str, n: int, publish: Any) -> dict[str, Any]:
    """The same as `bare_paho` with aiomqtt."""
    got, first, last = 0, 0.0, 0.0
    async with aiomqtt.Client("127.0.0.1", port,
                              identifier=f"bench-aio-{uuid.uuid4().hex}") as c:
        await c.subscribe(topic, qos=1)
        proc = publish()
        async with asyncio.timeout(120):
            async for _ in c.messages:
                now = time.perf_counter()
                if got == 0:
                    first = now
                got += 1
                last = now
                if got >= n:
                    break
    await asyncio.to_thread(proc.wait)
    elapsed = last - first
    return {"n": got, "s": elapsed, "rate": got / elapsed if elapsed else 0.0}


async def gateway_round(settings: Settings, topic: str, n: int,
                        publish: Any) -> dict[str, Any]:
    """The gateway as `run_gateway` builds it (producer, publisher defaults) on `topic`."""
    producer = make_gateway_producer(settings)
    await producer.start()
    publisher = TelemetryPublisher(producer, "gateway.mqtt")
    gateway = MqttGateway(settings, publisher, topic_config(settings),
                          client_id=f"bench-gw-{uuid.uuid4().hex[:6]}")
    first: list[float] = []
    handle_batch = gateway.handle_batch

    async def timed(batch: list[tuple[str, bytes]]) -> None:
        if not first:
            first.append(time.perf_counter())
        await handle_batch(batch)

    gateway.handle_batch = timed  # type: ignore[method-assign]
    task = asyncio.create_task(gateway.run())
    await gateway.connected.wait()
    cpu0 = time.process_time()
    proc = publish()
    deadline = time.monotonic() + 120
    while gateway.messages < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await publisher.flush()
    elapsed = time.perf_counter() - first[0]
    cpu = time.process_time() - cpu0
    await asyncio.to_thread(proc.wait)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await producer.stop()
    got = publisher.counts["applied"] + publisher.counts["partly_applied"] + \
        publisher.counts["out_of_order"]
    return {"n": got, "s": elapsed, "rate": got / elapsed,
            "cpu_us_per_msg": cpu / max(got, 1) * 1e6}


async def bench_mqtt(settings: Settings, n: int, rounds: int, qos: int = 0) -> dict[str, Any]:
    """`rounds` x (bare paho subscriber, gateway), each with its own site and publisher run,
    alternating so that both see the same machine load; medians. aiomqtt once."""
    sites = [f"bench-{uuid.uuid4().hex[:6]}" for _ in range(rounds)]

    def publisher_for(site: str) -> Any:
        topic = f"{settings.mqtt_prefix}/{site}/telemetry"
        return topic, lambda: child(PUBLISHER, str(settings.mqtt_port), topic, str(n), str(qos))

    bare, gw = [], []
    topic, publish = publisher_for(sites[0])
    aio = await bare_aiomqtt(settings.mqtt_port, topic, n, publish)
    for site in sites:
        topic, publish = publisher_for(site)
        bare.append(await asyncio.to_thread(bare_paho, settings.mqtt_port, topic, n, publish))
        gw.append(await gateway_round(settings, topic, n, publish))
    # into Postgres: the telemetry projection catches up on exactly these events
    runner = ProjectionRunner(TelemetryProjection(), settings.dsn, settings.bootstrap)
    await runner.open()
    t0 = time.perf_counter()
    await runner.catch_up()
    pg_s = time.perf_counter() - t0
    await runner.close()
    conn = await asyncpg.connect(settings.dsn)
    projected = await conn.fetchval("SELECT count(*) FROM telemetry.readings "
                                    "WHERE site = ANY($1::text[])", sites)
    await conn.close()
    ratios = [g["rate"] / b["rate"] for g, b in zip(gw, bare, strict=True)]
    return {"rounds": rounds, "aiomqtt": aio,
            "bare": {"n": n, "rate": statistics.median(b["rate"] for b in bare),
                     "rates": [b["rate"] for b in bare]},
            "gateway": {"n": min(g["n"] for g in gw),
                        "rate": statistics.median(g["rate"] for g in gw),
                        "rates": [g["rate"] for g in gw],
                        "cpu_us_per_msg": statistics.median(g["cpu_us_per_msg"] for g in gw)},
            "ratio": statistics.median(ratios), "ratios": ratios,
            "postgres": {"n": projected, "s": pg_s, "rate": projected / pg_s if pg_s else 0}}


async def raw_modbus(port: int, seconds: float) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n, tid = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tid = (tid + 1) & 0xFFFF
        writer.write(struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, 0, 3))
        header = await reader.readexactly(7)
        _tid, _proto, length, _unit = struct.unpack(">HHHB", header)
        body = await reader.readexactly(length - 1)
        assert body[0] == 3 and _tid == tid
        struct.unpack(">3H", body[2:8])
        n += 1
    elapsed = time.perf_counter() - t0
    writer.close()
    return {"n": n, "s": elapsed, "rate": n / elapsed}


async def bench_modbus(settings: Settings, seconds: float) -> dict[str, Any]:
    port = free_port()
    proc = child(SERVERS, str(port), "1")
    await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
    try:
        raw = await raw_modbus(port, seconds)
        reader = ModbusReader("127.0.0.1", port, 1, load_profile("default"))
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await reader.read()
            n += 1
        read = {"n": n, "s": time.perf_counter() - t0}
        read["rate"] = n / read["s"]
        producer = make_producer(settings.bootstrap, linger_ms=20)
        await producer.start()
        publisher = TelemetryPublisher(producer, "gateway.modbus", max_pending=20_000)
        device = ModbusDevice(site="bench", device_id="d", host="127.0.0.1", port=port)
        poller = DevicePoller(device, reader, publisher)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await poller.poll_once()
            n += 1
        await publisher.flush()
        full = {"n": n, "s": time.perf_counter() - t0}
        full["rate"] = n / full["s"]
        await producer.stop()
        reader.close()
    finally:
        proc.terminate()
    return {"raw": raw, "read": read, "poll": full}


async def bench_skew(settings: Settings, devices: int, seconds: float) -> dict[str, Any]:
    base = free_port()
    while any(not _free(base + i) for i in range(devices)):
        base = free_port()
    proc = child(SERVERS, str(base), str(devices))
    await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
    ticks: dict[float, list[float]] = {}

    def on_poll(_d: ModbusDevice, scheduled: float, started: float) -> None:
        ticks.setdefault(scheduled, []).append(started)

    devs = [ModbusDevice(site=f"skew-{i % 10}", device_id=f"d{i}", host="127.0.0.1",
                         port=base + i, interval_s=1.0) for i in range(devices)]
    task = asyncio.create_task(run_gateway(settings, devs, on_poll=on_poll))
    await asyncio.sleep(seconds + 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    proc.terminate()
    full = sorted(t for t, starts in ticks.items() if len(starts) == devices)[1:]  # warm-up
    spreads = [(max(ticks[t]) - min(ticks[t])) * 1000 for t in full]
    late = [(max(ticks[t]) - t) * 1000 for t in full]
    return {"ticks": len(full), "spread_p50_ms": statistics.median(spreads) if spreads else None,
            "spread_max_ms": max(spreads) if spreads else None,
            "late_max_ms": max(late) if late else None}


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def table(r: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    if "mqtt" in r:
        m = r["mqtt"]
        bare = m["bare"]["rate"]
        rounds = ", ".join(f"{x:.0%}" for x in m["ratios"])
        rows += [
            ("MQTT bare paho-mqtt subscriber (reference)", f"{bare:,.0f} msg/s",
             f"median of {m['rounds']} x {m['bare']['n']:,} msgs"),
            ("MQTT bare aiomqtt subscriber (comparison)", f"{m['aiomqtt']['rate']:,.0f} msg/s",
             f"{m['aiomqtt']['rate'] / bare:.0%} of bare paho"),
            ("MQTT gateway -> Kafka (acked)", f"{m['gateway']['rate']:,.0f} readings/s",
             f"{m['ratio']:.0%} of bare (rounds: {rounds}; target >= 50 %, >= 10k/s); "
             f"{m['gateway']['cpu_us_per_msg']:.0f} us CPU per reading"),
            ("  -> Postgres (telemetry projection)", f"{m['postgres']['rate']:,.0f} readings/s",
             f"{m['postgres']['n']:,} events"),
        ]
    if "modbus" in r:
        mb = r["modbus"]
        rows += [
            ("Modbus raw-socket client (reference)", f"{mb['raw']['rate']:,.0f} polls/s", ""),
            ("Modbus gateway reader (pymodbus+decode)", f"{mb['read']['rate']:,.0f} polls/s",
             f"{mb['read']['rate'] / mb['raw']['rate']:.0%} of raw (target >= 50 %)"),
            ("Modbus gateway poll (+validate+publish)", f"{mb['poll']['rate']:,.0f} polls/s",
             f"{mb['poll']['rate'] / mb['raw']['rate']:.0%} of raw"),
        ]
    if "skew" in r:
        sk = r["skew"]
        rows.append((f"{r['devices']} devices at 1 Hz: poll-start spread",
                     f"p50 {sk['spread_p50_ms']:.1f} ms",
                     f"max {sk['spread_max_ms']:.1f} ms over {sk['ticks']} ticks "
                     f"(target < 200 ms); latest start {sk['late_max_ms']:.1f} ms after the tick"))
    w = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{w}}  {b:>22}  {c}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3,
                    help="MQTT: alternating reference/gateway rounds (medians)")
    ap.add_argument("--qos", type=int, choices=(0, 1), default=0,
                    help="MQTT: the publisher's QoS (1: the gateway acknowledges each message "
                         "after Kafka confirmed it, within the broker's max_inflight_messages)")
    ap.add_argument("--only", choices=("mqtt", "modbus", "skew"), action="append",
                    help="run only these parts (repeatable); default: all")
    args = ap.parse_args(argv)
    os.environ.setdefault("BESS_LOG_LEVEL", "WARNING")
    from infra.logging import configure_logging

    configure_logging("WARNING", False)
    tmp = Path(tempfile.mkdtemp(prefix="bess-bench-tel-"))
    started: list[Any] = []
    try:
        dsn = os.environ.get("BESS_POSTGRES_DSN")
        bootstrap = os.environ.get("BESS_KAFKA_BOOTSTRAP")
        if dsn is None:
            pg = PostgresServer(tmp / "postgres", port=free_port(), fsync=False)
            pg.start()
            started.append(pg)
            dsn = pg.dsn
        if bootstrap is None:
            kafka = KafkaServer(tmp / "kafka", port=free_port(), controller_port=free_port())
            kafka.start()
            started.append(kafka)
            bootstrap = kafka.bootstrap
        broker = start_broker(tmp / "mosquitto")
        started.append(broker)
        settings = Settings(kafka_bootstrap=bootstrap, postgres_dsn=dsn, home=tmp,  # type: ignore[arg-type]
                            mqtt_port=broker.port, mqtt_prefix="bench")

        async def run() -> dict[str, Any]:
            await ensure_topics(bootstrap)
            parts = args.only or ["mqtt", "modbus", "skew"]
            out: dict[str, Any] = {"devices": args.devices}
            if "mqtt" in parts:
                out["mqtt"] = await bench_mqtt(settings, args.messages, args.rounds, args.qos)
            if "modbus" in parts:
                out["modbus"] = await bench_modbus(settings, args.seconds)
            if "skew" in parts:
                out["skew"] = await bench_skew(settings, args.devices, max(5.0, args.seconds))
            return out

        result = asyncio.run(run())
        sys.stdout.write(table(result) + "\n")
        return 0
    finally:
        for s in reversed(started):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
