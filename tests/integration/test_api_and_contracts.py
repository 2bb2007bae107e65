"""The query API over the real projection, and the topics read by an independent client (kcat)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime

import httpx
import jsonschema
import pytest

from infra.local.process import free_port
from infra.settings import PROJECT_ROOT
from schemas.catalog import INDICATORS, PRICE_TICKS
from schemas.export import export
from tests.integration.helpers import (
    project_market,
    publish,
    read_until,
    real_ticks,
    start_api,
)

pytestmark = pytest.mark.integration
CSV = PROJECT_ROOT / "data" / "at_hourly_2015_2023.csv"



@pytest.fixture(scope="module")
async def api_market(services, indicators_worker):
    """A market with one real week of prices projected, and the API serving it."""
    market = f"API_{uuid.uuid4().hex[:8]}"
    ticks = real_ticks(market, datetime(2022, 8, 1, tzinfo=UTC), datetime(2022, 8, 8, tzinfo=UTC))
    await publish(services.bootstrap, ticks)
    await read_until(services.bootstrap, INDICATORS.name,
                     lambda m: sum(1 for e in m if e.payload.market == market) >= len(ticks), 90)
    await project_market(services.dsn, services.bootstrap)
    proc, base = await start_api(services.env(BESS_API_PORT=str(free_port())),
                                 services.home / "api.log")
    yield base, market, ticks
    proc.terminate()
    proc.wait(10)


async def test_prices_history_range_and_resampling(api_market) -> None:
    base, market, ticks = api_market
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/api/market/prices", params={
            "market": market, "start": "2022-08-02T00:00:00Z", "end": "2022-08-03T00:00:00Z"})
        assert r.status_code == 200
        body = r.json()
        day = [t for t in ticks if t.delivery_start.day == 2]
        assert body["count"] == 24
        assert [p["price_eur_mwh"] for p in body["prices"]] == [t.price_eur_mwh for t in day]
        r = await client.get("/api/market/prices", params={"market": market, "resolution": "P1D"})
        daily = r.json()["prices"]
        assert len(daily) == 7
        assert daily[1]["price_eur_mwh"] == pytest.approx(sum(t.price_eur_mwh for t in day) / 24)
        assert daily[1]["max_eur_mwh"] == max(t.price_eur_mwh for t in day)
        bad = await client.get("/api/market/prices", params={
            "market": market, "start": "2022-08-03T00:00:00Z", "end": "2022-08-02T00:00:00Z"})
        assert bad.status_code == 422 and "end must be after start" in bad.text
        naive = await client.get("/api/market/prices", params={"start": "2022-08-03T00:00:00"})
        assert naive.status_code == 422


async def test_indicators_latest_and_metrics(api_market) -> None:
    base, market, ticks = api_market
    async with httpx.AsyncClient(base_url=base) as client:
        latest = (await client.get("/api/market/indicators", params={"market": market})).json()
        assert len(latest) == 1 and latest[0]["as_of"].startswith("2022-08-07T23:00")
        assert latest[0]["mark_price_eur_mwh"] == ticks[-1].price_eur_mwh
        history = (await client.get("/api/market/indicators",
                                    params={"market": market, "history": "true"})).json()
        assert len(history) == len(ticks)
        missing = await client.get("/api/market/indicators", params={"market": "NOPE"})
        assert missing.status_code == 404
        health = (await client.get("/health")).json()
        assert health == {"status": "ok", "postgres": True, "kafka": True}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "bess_projection" in metrics.text
        openapi = (await client.get("/openapi.json")).json()
        assert "/api/market/prices" in openapi["paths"]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (make install does)")
async def test_topics_read_by_kcat_validate_against_exported_schemas(
    services, api_market, tmp_path
) -> None:
    export(tmp_path)
    validators = {}
    for path in tmp_path.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        validators[path.name.split(".")[0]] = jsonschema.Draft202012Validator(schema)
    for topic in (PRICE_TICKS.name, INDICATORS.name):
        out = (await asyncio.to_thread(
            subprocess.run,
            ["kcat", "-b", services.bootstrap, "-C", "-t", topic, "-e", "-q", "-o", "beginning",
             "-X", "isolation.level=read_committed", "-f", "%k\t%s\n"],
            capture_output=True, text=True, timeout=60, check=True)).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        checked = 0
        for line in lines:
            key, _, value = line.partition("\t")
            try:
                message = json.loads(value)
            except json.JSONDecodeError:
                continue  # the malformed messages of the dead-letter test
            if message.get("event_type") not in validators:
                continue
            validators[message["event_type"]].validate(message)
            assert key == message["key"]
            checked += 1
        assert checked >= 100, topic
