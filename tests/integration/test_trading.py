"""Trading end to end on the real broker and database: API -> risk -> matching -> trades,
order events and positions; the matching processor killed mid-stream loses and duplicates
no trade."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from infra.kafka_io import make_producer, publish
from infra.local.process import free_port
from projections.framework import ProjectionRunner
from projections.trading import TradingProjection
from schemas.catalog import MATCHING_INBOX, ORDER_COMMANDS_TOPIC, TRADES
from schemas.envelope import new_envelope
from schemas.telemetry import TelemetryReceived
from schemas.trading import Side, SubmitOrder, TradeExecuted
from tests.integration.helpers import read_until, start_api

pytestmark = pytest.mark.integration
MARKET = "EPEX_AT_INTRADAY_15MIN"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
async def trading(services):
    procs = {name: services.spawn("worker", name, log_name=f"{name}-worker")
             for name in ("risk", "matching")}
    procs["projector"] = services.spawn("projector", "trading", log_name="projector-trading")
    api, base = await start_api(services.env(BESS_API_PORT=str(free_port())),
                                services.home / "api-trading.log")
    yield procs, base
    _stop(api)
    for proc in procs.values():
        _stop(proc)


def period(hours_ahead: int = 2) -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)


async def send(bootstrap: str, topic: str, payloads: list, key: str | None = None) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for p in payloads:
            now = datetime.now(UTC)
            await publish(producer, topic, new_envelope(p, occurred_at=now, source="test", key=key))
        await producer.flush()
    finally:
        await producer.stop()


def telemetry(site: str, soc: float) -> TelemetryReceived:
    now = datetime.now(UTC)
    return TelemetryReceived(site=site, device_id="bms", source="manual", device_time=now,
                             received_at=now, soc_pct=soc, temperature_c=25.0)


def order(account: str, site: str, side: Side, qty: str, price: str, start: datetime,
          market: str = MARKET) -> SubmitOrder:
    return SubmitOrder(order_id=uuid.uuid4(), account=account, site=site, market=market,
                       side=side, quantity_mwh=Decimal(qty), limit_price_eur_mwh=Decimal(price),
                       delivery_start=start, delivery_end=start + timedelta(minutes=15),
                       submitted_at=datetime.now(UTC))


async def project(services) -> None:
    await ProjectionRunner(TradingProjection(), services.dsn, services.bootstrap).run_to_end()



async def poll(fn, timeout_s: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await fn()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.3)


async def test_orders_through_api_reach_trades_and_positions(services, trading) -> None:
    _, base = trading
    start = period()
    await send(services.bootstrap, "telemetry.readings.v1", [telemetry("site-1", 50.0)])
    ask = order("market-maker", "market-maker", Side.SELL, "1.0", "100.00", start)
    await send(services.bootstrap, ORDER_COMMANDS_TOPIC.name, [ask])

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def projected_order(order_id: str):
            await project(services)
            r = await client.get(f"/api/orders/{order_id}")
            return r.json() if r.status_code == 200 else None

        assert (await poll(lambda: projected_order(str(ask.order_id))))["status"] == "open"
        body = {"site": "site-1", "market": MARKET, "side": "BUY", "quantity_mwh": "0.2",
                "limit_price_eur_mwh": "101.00", "delivery_start": start.isoformat()}
        r = await client.post("/api/orders", json=body)
        assert r.status_code == 202
        order_id = r.json()["order_id"]

        async def filled():
            o = await projected_order(order_id)
            return o if o and o["status"] == "filled" else None

        o = await poll(filled)
        assert o is not None, "the API order was not filled"
        assert Decimal(o["filled_quantity_mwh"]) == Decimal("0.2")
        assert [e["event_type"] for e in o["events"]] == ["OrderAccepted", "OrderFilled"]
        trades = (await client.get("/api/trades", params={"site": "site-1"})).json()
        assert len(trades) == 1
        assert Decimal(trades[0]["price_eur_mwh"]) == Decimal("100.00")  # maker price
        assert trades[0]["sell_order_id"] == str(ask.order_id)
        positions = (await client.get("/api/positions", params={"site": "site-1"})).json()
        assert Decimal(positions[0]["net_mwh"]) == Decimal("0.2")
        assert Decimal(positions[0]["avg_open_price_eur_mwh"]) == Decimal("100.00")
        mm = (await client.get("/api/positions", params={"site": "market-maker"})).json()
        assert Decimal(mm[0]["net_mwh"]) == Decimal("-0.2")
        book = (await client.get(f"/api/book/{MARKET}")).json()
        level = book["periods"][start.isoformat()]["asks"][0]
        assert Decimal(level["quantity_mwh"]) == Decimal("0.8")

        # nearly full battery: the physics rejects a BUY (no headroom below SoC max)
        await send(services.bootstrap, "telemetry.readings.v1", [telemetry("site-1", 89.5)])
        await asyncio.sleep(1.0)
        r = await client.post("/api/orders", params={"wait": "true", "timeout_s": "20"},
                              json=body | {"quantity_mwh": "0.1", "delivery_start":
                                           (start + timedelta(minutes=15)).isoformat()})
        assert r.status_code == 422, r.text
        assert r.json()["reject_reason"] == "soc_above_max"
        bad = await client.post("/api/orders", json=body | {"quantity_mwh": "-1"})
        assert bad.status_code == 422


async def test_matching_killed_mid_stream_loses_and_duplicates_no_trade(services, trading) -> None:
    procs, _ = trading
    start = period(3)
    pairs = 400
    commands = []
    for i in range(pairs):
        price = f"{50 + i % 7}.00"
        commands.append(order("mm-a", "market-maker", Side.SELL, "0.5", price, start))
        commands.append(order("mm-b", "market-maker", Side.BUY, "0.5", price, start))
    await send(services.bootstrap, MATCHING_INBOX.name, commands[: len(commands) // 2], key=MARKET)
    killed = []

    async def kill_and_restart() -> None:
        await asyncio.sleep(0.3)
        procs["matching"].kill()  # SIGKILL: no clean shutdown, open transaction aborted
        procs["matching"].wait(10)
        killed.append(True)
        procs["matching"] = services.spawn("worker", "matching", log_name="matching-worker")

    await asyncio.gather(kill_and_restart(),
                         send(services.bootstrap, MATCHING_INBOX.name,
                              commands[len(commands) // 2:], key=MARKET))
    ids = {c.order_id for c in commands}

    def done(msgs: list) -> bool:
        return sum(1 for m in msgs if isinstance(m.payload, TradeExecuted)
                   and m.payload.buy_order_id in ids) >= pairs

    msgs = await read_until(services.bootstrap, TRADES.name, done, 120)
    await asyncio.sleep(2.0)  # a duplicate would arrive now
    msgs = await read_until(services.bootstrap, TRADES.name, lambda m: False, 3)
    mine = [m.payload for m in msgs if isinstance(m.payload, TradeExecuted)
            and m.payload.buy_order_id in ids]
    assert killed
    dupes = [k for k, n in Counter(t.trade_id for t in mine).items() if n > 1]
    assert not dupes, f"{len(mine)} trades, {len(dupes)} trade ids seen more than once"
    assert len(mine) == pairs
    assert len({t.trade_id for t in mine}) == pairs
    assert Counter(t.buy_order_id for t in mine).most_common(1)[0][1] == 1
    assert Counter(t.sell_order_id for t in mine).most_common(1)[0][1] == 1
    assert all(t.quantity_mwh == Decimal("0.5") for t in mine)
