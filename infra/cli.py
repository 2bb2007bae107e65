"""The `bess` command: run the stack, single services, topic and projection maintenance."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from infra.logging import configure_logging, get_logger
from infra.settings import get_settings

app = typer.Typer(help="Event-sourced BESS trading and dispatch backend.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the catalog.", no_args_is_help=True)
schemas_app = typer.Typer(help="Event contracts.", no_args_is_help=True)
projections_app = typer.Typer(help="Postgres read models.", no_args_is_help=True)
gateway_app = typer.Typer(help="Edges: market data, telemetry.", no_args_is_help=True)
kafka_app = typer.Typer(help="The embedded Apache Kafka.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(projections_app, name="projections")
app.add_typer(gateway_app, name="gateway")
app.add_typer(kafka_app, name="kafka")

from infra.cli_telemetry import register as _register_telemetry  # noqa: E402

_register_telemetry(app, gateway_app)  # gateway modbus|mqtt, simulate device, telemetry

from infra.cli_forecast import forecast_app  # noqa: E402

app.add_typer(forecast_app, name="forecast")  # forecast backtest

events_app = typer.Typer(help="The event log.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("export")
def events_export(
    topic: Annotated[str, typer.Argument(help="e.g. market.price-ticks.v1")],
    start: Annotated[str, typer.Option("--from", help="ISO 8601 with zone, inclusive")],
    end: Annotated[str, typer.Option("--to", help="ISO 8601 with zone, exclusive")],
    out: Annotated[Path | None, typer.Option(help="file (default: stdout)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (envelopes) or csv (flat)")]
    = "jsonl",
    by: Annotated[str, typer.Option(help="event: by occurred_at (scans the topic); log: by "
                                         "publish time (seeks)")] = "event",
) -> None:
    """Export a time range of a topic (committed messages) for analysis."""
    from datetime import datetime

    from infra.event_export import export_to_path

    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        stop = datetime.fromisoformat(end.replace("Z", "+00:00"))
        summary = asyncio.run(export_to_path(get_settings().bootstrap, topic, begin, stop, out,
                                             fmt, by))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{summary.written} message(s) exported, {summary.undecodable} undecodable"
               + (f", {summary.first.isoformat()} .. {summary.last.isoformat()}"
                  if summary.first and summary.last else ""), err=True)

WORKERS = ("indicators", "risk", "matching", "forecaster", "dispatch")


def _setup() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


@app.command()
def up(
    replay: Annotated[bool, typer.Option(help="Replay the shipped real prices.")] = True,
) -> None:
    """Start everything on this machine (embedded Kafka, Postgres, Mosquitto unless external)."""
    from infra.local.stack import supervise

    _setup()
    asyncio.run(supervise(get_settings(), replay=replay))


@app.command()
def services(
    action: Annotated[str, typer.Argument(help="start: start the embedded infrastructure and wait")]
    = "start",
) -> None:
    """Run only the embedded infrastructure (Kafka, Postgres, Mosquitto) until Ctrl-C."""
    import signal
    import threading

    from infra.kafka_io import ensure_topics
    from infra.local.stack import start_infra

    _setup()
    settings = get_settings()
    infra = start_infra(settings)
    asyncio.run(ensure_topics(settings.bootstrap))
    typer.echo(" ".join(f"{k}={v}" for k, v in infra.env.items()))
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    infra.stop()


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalog topic (and its .dlq) that does not exist yet."""
    from infra.kafka_io import ensure_topics

    _setup()
    created = asyncio.run(ensure_topics(get_settings().bootstrap))
    typer.echo(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


@topics_app.command("list")
def topics_list() -> None:
    """Print the topic catalog."""
    from schemas.catalog import all_topics

    for t in all_topics():
        payloads = ",".join(p.event_type for p in t.payloads)
        typer.echo(f"{t.name:32} key={t.key:28} partitions={t.partitions} "
                   f"retention_ms={t.retention_ms} payloads={payloads}")


@schemas_app.command("export")
def schemas_export(out_dir: Annotated[Path, typer.Argument()] = Path("build/schemas")) -> None:
    """Write JSON Schema for every message type and an AsyncAPI 3.0 document."""
    from schemas.export import export

    for path in export(out_dir):
        typer.echo(str(path))


@app.command()
def worker(
    name: Annotated[str, typer.Argument(help=f"one of {', '.join(WORKERS)}")],
    web_port: Annotated[int | None, typer.Option(help="port serving Prometheus /metrics")] = None,
) -> None:
    """Run one stream processor (exactly-once); scale by starting more (up to the partitions)."""
    import signal

    from prometheus_client import start_http_server

    _setup()
    settings = get_settings()
    if name == "indicators":
        from streams.indicators.app import create_runtime
    elif name == "risk":
        from streams.trading.risk import create_runtime
    elif name == "matching":
        from streams.trading.matching import create_runtime
    elif name == "forecaster":
        from streams.ems.forecaster import create_runtime
    elif name == "dispatch":
        from streams.ems.dispatch import create_runtime
    else:
        raise typer.BadParameter(f"unknown worker {name!r}; known: {', '.join(WORKERS)}")
    runtime = create_runtime(settings)
    if web_port is not None:
        start_http_server(web_port, addr=settings.metrics_host)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop)
        await runtime.run()

    asyncio.run(main())


@app.command()
def projector(
    names: Annotated[list[str], typer.Argument(help="projection names or 'all'")],
) -> None:
    """Run projections (Kafka -> Postgres) until stopped."""
    from projections.framework import ProjectionRunner
    from projections.registry import projections

    _setup()
    settings = get_settings()
    known = projections()
    selected = list(known) if names == ["all"] else names
    for n in selected:
        if n not in known:
            raise typer.BadParameter(f"unknown projection {n!r}; known: {', '.join(known)}")

    async def main() -> None:
        runners = [ProjectionRunner(known[n], settings.dsn, settings.bootstrap) for n in selected]
        await asyncio.gather(*(r.run() for r in runners))

    asyncio.run(main())


@projections_app.command("list")
def projections_list() -> None:
    """Names, schemas and topics of the projections."""
    from projections.registry import projections

    for p in projections().values():
        typer.echo(f"{p.name:16} schema={p.schema:16} topics={','.join(p.topics)}")


@projections_app.command("rebuild")
def projections_rebuild(name: str) -> None:
    """Replay a projection from the start of its topics into fresh tables and swap them in."""
    from projections.framework import rebuild
    from projections.registry import projections

    _setup()
    settings = get_settings()
    known = projections()
    if name not in known:
        raise typer.BadParameter(f"unknown projection {name!r}; known: {', '.join(known)}")
    replayed = asyncio.run(rebuild(known[name], settings.dsn, settings.bootstrap))
    typer.echo(f"rebuilt {name}: {replayed} message(s) replayed")


@gateway_app.command("market-data")
def gateway_market_data(
    source: Annotated[str, typer.Option(help="file | entsoe | awattar")] = "file",
    zone: Annotated[
        list[str] | None, typer.Option(help="bidding zone(s) for entsoe/awattar")
    ] = None,
    interval_s: Annotated[float, typer.Option(help="poll interval, seconds")] = 300.0,
    once: Annotated[bool, typer.Option(help="poll once and exit")] = False,
) -> None:
    """Publish price ticks: replay the shipped file, or poll ENTSO-E / aWATTar."""
    from gateways.market_data.service import run_file, run_poller

    _setup()
    settings = get_settings()
    log = get_logger("bess")
    if source == "file":
        n = asyncio.run(run_file(settings))
    elif source in ("entsoe", "awattar"):
        n = asyncio.run(run_poller(settings, source, zone or ["AT"], interval_s, once))
    else:
        raise typer.BadParameter(f"unknown source {source!r}")
    log.info("market-data gateway finished", published=n)


@gateway_app.command("market-maker")
def gateway_market_maker(
    market: Annotated[str, typer.Option(help="market quoted")] = "EPEX_AT_INTRADAY_15MIN",
    reference: Annotated[str, typer.Option(help="market whose mark price is followed")]
    = "EPEX_AT_DAY_AHEAD_60MIN",
    periods: Annotated[int, typer.Option(help="delivery quarter-hours quoted")] = 4,
    clock: Annotated[str, typer.Option(help="wall: quote the periods after now; market: "
                                            "after the reference market's event time "
                                            "(a replay)")] = "wall",
    site: Annotated[str, typer.Option(help="site and account of the quotes (policy.yaml)")]
    = "market-maker",
) -> None:
    """Quote bids and asks around the real replayed price (demo liquidity)."""
    from gateways.market_maker.service import MarketMaker

    if clock not in ("wall", "market"):
        raise typer.BadParameter("clock must be wall or market")
    _setup()
    asyncio.run(MarketMaker(get_settings(), reference_market=reference, market=market,
                            periods=periods, clock=clock, site=site, account=site).run())


@app.command()
def api() -> None:
    """Serve the query API (uvicorn)."""
    import uvicorn

    from api.main import create_app

    _setup()
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level=settings.log_level.lower())


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Download the pinned Apache Kafka jars from Maven Central (cached)."""
    from infra.local.kafka import fetch_kafka

    typer.echo(str(fetch_kafka()))


if __name__ == "__main__":
    sys.exit(app())
