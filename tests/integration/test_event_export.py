"""`bess events export`: a range of a real topic in event time, as JSON Lines and CSV, from the
real broker; undecodable messages are reported, not dropped silently."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from infra.event_export import export
from infra.settings import PROJECT_ROOT
from schemas.catalog import PRICE_TICKS
from tests.integration.helpers import produce_raw, publish, real_ticks

pytestmark = pytest.mark.integration
MARKET = "TEST_EXPORT_AT_60MIN"
START = datetime(2021, 3, 27, tzinfo=UTC)  # the spring DST change (23 local hours) inside


async def test_export_a_day_of_ticks_in_event_time(services) -> None:
    ticks = real_ticks(MARKET, START, START + timedelta(days=3))
    await publish(services.bootstrap, ticks)
    await produce_raw(services.bootstrap, PRICE_TICKS.name, [(b"x", b"not json")])
    lo, hi = START + timedelta(days=1), START + timedelta(days=2)
    out = io.StringIO()
    summary = await export(services.bootstrap, PRICE_TICKS.name, lo, hi, out, "jsonl")
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    mine = [m for m in lines if m.get("payload", {}).get("market") == MARKET]
    expected = [t for t in ticks if lo <= t.delivery_start < hi]
    assert [m["payload"]["price_eur_mwh"] for m in mine] == [t.price_eur_mwh for t in expected]
    assert all(lo <= datetime.fromisoformat(m["occurred_at"]) < hi for m in lines
               if "occurred_at" in m)
    assert summary.undecodable >= 1
    assert any("error" in m for m in lines)

    table = io.StringIO()
    await export(services.bootstrap, PRICE_TICKS.name, lo, hi, table, "csv")
    rows = [r for r in csv.DictReader(io.StringIO(table.getvalue()))
            if r["payload.market"] == MARKET]
    assert [float(r["payload.price_eur_mwh"]) for r in rows] == [t.price_eur_mwh
                                                                 for t in expected]
    assert rows[0]["event_type"] == "PriceTickReceived"


def test_cli_rejects_a_naive_range(services) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "events", "export", PRICE_TICKS.name,
         "--from", "2021-03-28T00:00", "--to", "2021-03-29T00:00Z"],
        env=services.env(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "timezone" in result.stderr
