"""Market data end to end on the real broker and database: price file -> indicators -> Postgres."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from infra.settings import PROJECT_ROOT
from schemas.catalog import INDICATORS, PRICE_TICKS
from schemas.dead_letter import MessageDeadLettered
from schemas.market import MarketIndicatorsUpdated
from tests.integration.helpers import produce_raw, project_market, publish, read_until, real_ticks

pytestmark = pytest.mark.integration

CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"


def expected_indicators(prices: list[float], span: int, window: int) -> list[tuple[float, float]]:
    """EMA and VWAP computed here independently of domain/: hourly ticks, weight 1 h each."""
    alpha = 2 / (span + 1)
    out, ema = [], None
    for i, p in enumerate(prices):
        ema = p if ema is None else alpha * p + (1 - alpha) * ema
        recent = prices[max(0, i - window + 1): i + 1]
        out.append((ema, math.fsum(recent) / len(recent)))
    return out


async def test_price_file_to_indicator_events_and_rows(services, indicators_worker, pg) -> None:
    market = f"TEST_{uuid.uuid4().hex[:8]}"
    ticks = real_ticks(market, datetime(2023, 3, 20, tzinfo=UTC), datetime(2023, 3, 28, tzinfo=UTC))
    assert len(ticks) == 8 * 24  # UTC hours; the local day 2023-03-26 has 23 of them
    assert await publish(services.bootstrap, ticks) == len(ticks)

    events = await read_until(
        services.bootstrap, INDICATORS.name,
        lambda msgs: sum(1 for m in msgs if m.payload.market == market) >= len(ticks), 90)
    updates = [m.payload for m in events if m.payload.market == market]
    assert len(updates) == len(ticks)
    settings = services.settings()
    want = expected_indicators([t.price_eur_mwh for t in ticks], settings.ema_span,
                               settings.vwap_window_s // 3600)
    for tick, update, (ema, vwap) in zip(ticks, updates, want, strict=True):
        assert isinstance(update, MarketIndicatorsUpdated)
        assert update.as_of == tick.delivery_start
        assert update.mark_price_eur_mwh == tick.price_eur_mwh
        assert update.ema_eur_mwh == ema
        assert update.vwap_eur_mwh == vwap
        assert update.vwap_basis == "ticks"

    await project_market(services.dsn, services.bootstrap)
    rows = await pg.fetch("SELECT delivery_start, price_eur_mwh FROM market.prices WHERE market=$1 "
                          "ORDER BY delivery_start", market)
    assert [(r["delivery_start"], r["price_eur_mwh"]) for r in rows] == \
        [(t.delivery_start, t.price_eur_mwh) for t in ticks]
    ind = await pg.fetch("SELECT ema_eur_mwh, vwap_eur_mwh FROM market.indicators WHERE market=$1 "
                         "ORDER BY as_of", market)
    assert [(r["ema_eur_mwh"], r["vwap_eur_mwh"]) for r in ind] == want
    summary = await pg.fetchrow("SELECT * FROM market.summary WHERE market=$1", market)
    assert summary["ticks"] == len(ticks)


async def test_malformed_message_goes_to_dead_letter_topic(services, indicators_worker) -> None:
    marker = uuid.uuid4().hex.encode()
    bad = [(b"BAD", b"{not json " + marker),
           (b"BAD", b'{"event_id":"' + str(uuid.uuid4()).encode() + b'","event_type":"Nope",'
            b'"schema_version":1,"occurred_at":"2023-01-01T00:00:00Z","source":"t","key":"k",'
            b'"payload":{"m":"' + marker + b'"}}')]
    await produce_raw(services.bootstrap, PRICE_TICKS.name, bad)

    def found(msgs: list) -> bool:
        return sum(1 for m in msgs if marker.decode() in _original(m)
                   and m.payload.processor == "indicators") >= 2

    letters = await read_until(services.bootstrap, PRICE_TICKS.dlq, found, 60)
    mine = [m.payload for m in letters if marker.decode() in _original(m)
            and m.payload.processor == "indicators"]
    assert len(mine) == 2
    reasons = sorted(p.error for p in mine)
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "unknown event_type 'Nope'"
    assert all(isinstance(p, MessageDeadLettered) and p.original_topic == PRICE_TICKS.name
               for p in mine)


def _original(envelope) -> str:
    import base64

    return base64.b64decode(envelope.payload.value_b64).decode(errors="replace")


async def test_projection_killed_mid_stream_counts_every_tick_once(services, pg) -> None:
    market = f"KILL_{uuid.uuid4().hex[:8]}"
    ticks = real_ticks(market, datetime(2021, 1, 1, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC))
    await publish(services.bootstrap, ticks)

    async def projected() -> int:
        try:
            return await pg.fetchval("SELECT ticks FROM market.summary WHERE market=$1",
                                     market) or 0
        except asyncpg.exceptions.UndefinedTableError:  # the table may not exist yet
            return 0

    killed_at = None
    kills_mid_stream = []
    for _ in range(3):  # kill -9 the projector while it is mid-way, then restart it
        proc = services.spawn("projector", "market", log_name="projector-kill")
        for _ in range(600):
            n = await projected()
            if 0 < n < len(ticks) and (killed_at is None or n > killed_at):
                break
            await asyncio.sleep(0.01)
        proc.kill()
        proc.wait(10)
        killed_at = await projected()
        kills_mid_stream.append(0 < killed_at < len(ticks))
        if killed_at >= len(ticks):
            break
    proc = services.spawn("projector", "market", log_name="projector-kill")
    try:
        for _ in range(600):
            if await projected() >= len(ticks):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a double-count would show up now
        assert any(kills_mid_stream), "the projector was never killed mid-stream"
        assert await projected() == len(ticks)
        assert await pg.fetchval("SELECT count(*) FROM market.prices WHERE market=$1", market) \
            == len(ticks)
    finally:
        proc.terminate()
        proc.wait(10)


async def test_rebuild_reproduces_the_same_tables(services, indicators_worker, pg) -> None:
    market = f"REBUILD_{uuid.uuid4().hex[:8]}"
    ticks = real_ticks(market, datetime(2020, 2, 1, tzinfo=UTC), datetime(2020, 2, 3, tzinfo=UTC))
    await publish(services.bootstrap, ticks)
    await read_until(services.bootstrap, INDICATORS.name,  # all derived events are in the log
                     lambda msgs: sum(1 for m in msgs if m.payload.market == market) >= len(ticks))
    await project_market(services.dsn, services.bootstrap)
    tables = ("prices", "indicators", "summary")
    before = {t: await pg.fetch(f"SELECT * FROM market.{t} ORDER BY 1, 2") for t in tables}
    assert before["prices"]
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "infra.cli", "projections", "rebuild", "market"],
        env=services.env(), capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rebuilt market" in result.stdout
    after = {t: await pg.fetch(f"SELECT * FROM market.{t} ORDER BY 1, 2") for t in tables}
    for t in tables:
        assert [dict(r) for r in after[t]] == [dict(r) for r in before[t]], t
    offsets = await pg.fetch("SELECT DISTINCT projection FROM bess_meta.projection_offsets")
    assert "market" in {r["projection"] for r in offsets}
    assert not [r for r in offsets if r["projection"].endswith("__rebuild")]
