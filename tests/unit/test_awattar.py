"""aWATTar parser on real samples, and the client against a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from gateways.market_data.awattar import (
    AWATTAR_URLS,
    AwattarClient,
    AwattarError,
    parse_awattar,
)
from gateways.market_data.price_file import read_price_csv
from tests.sample_server import SampleServer, serve

DATA = Path(__file__).resolve().parents[2] / "data"
JAN = (DATA / "samples" / "awattar_AT_2023-01-15.json").read_bytes()
NEGATIVE = (DATA / "samples" / "awattar_AT_2025-05-11_negative.json").read_bytes()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _slots(*slots: dict[str, object]) -> bytes:
    return orjson.dumps({"object": "list", "data": list(slots)})


def _slot(price: object, unit: object = "Eur/MWh", minutes: int = 60) -> dict[str, object]:
    start = 1673737200000
    return {
        "start_timestamp": start,
        "end_timestamp": start + minutes * 60_000,
        "marketprice": price,
        "unit": unit,
    }


def test_parse_sample_day() -> None:
    ticks = parse_awattar(JAN, bidding_zone="AT")
    assert len(ticks) == 24
    assert (ticks[0].delivery_start, ticks[0].price_eur_mwh) == (utc(2023, 1, 14, 23), 21.63)
    assert (ticks[-1].delivery_start, ticks[-1].price_eur_mwh) == (utc(2023, 1, 15, 22), 66.33)
    assert ticks[-1].delivery_end == utc(2023, 1, 15, 23)
    assert [t.delivery_start for t in ticks] == [
        utc(2023, 1, 14, 23) + timedelta(hours=i) for i in range(24)
    ]
    assert {(t.market, t.resolution, t.bidding_zone, t.data_source) for t in ticks} == {
        ("EPEX_AT_DAY_AHEAD_60MIN", "PT60M", "AT", "awattar")
    }
    assert min(t.price_eur_mwh for t in ticks) == 4.31


def test_sample_agrees_with_price_csv() -> None:
    ticks = parse_awattar(JAN, bidding_zone="AT")
    from_file = list(
        read_price_csv(
            DATA / "at_hourly_2015_2023.csv", start=utc(2023, 1, 14, 23), end=utc(2023, 1, 15, 23)
        )
    )
    assert [(t.delivery_start, t.price_eur_mwh) for t in ticks] == [
        (t.delivery_start, t.price_eur_mwh) for t in from_file
    ]
    assert {t.market for t in ticks} == {t.market for t in from_file}


def test_parse_negative_prices() -> None:
    ticks = parse_awattar(NEGATIVE, bidding_zone="AT")
    assert len(ticks) == 24
    cheapest = min(ticks, key=lambda t: t.price_eur_mwh)
    assert cheapest.price_eur_mwh == -252.6
    assert ticks[0].delivery_start == utc(2025, 5, 10, 22)
    assert ticks[9].price_eur_mwh == -0.1
    assert sum(t.price_eur_mwh < 0 for t in ticks) >= 2


def test_zone_and_resolution_pick_the_market() -> None:
    [tick] = parse_awattar(_slots(_slot(50.0, minutes=15)), bidding_zone="de_lu")
    assert (tick.market, tick.bidding_zone, tick.resolution) == (
        "EPEX_DE_LU_DAY_AHEAD_15MIN",
        "DE-LU",
        "PT15M",
    )


@pytest.mark.parametrize(
    ("price", "unit", "eur_mwh"),
    [(21.63, "Eur/MWh", 21.63), (0.02163, "Eur/kWh", 21.63), (2.163, "ct/kWh", 21.63),
     (-0.2526, "EUR / kWh", -252.6), (7, "eur/mwh", 7.0)],
)  # fmt: skip
def test_units_are_converted_to_eur_mwh(price: float, unit: str, eur_mwh: float) -> None:
    [tick] = parse_awattar(_slots(_slot(price, unit)), bidding_zone="AT")
    assert tick.price_eur_mwh == pytest.approx(eur_mwh)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_slots(_slot(1.0, "USD/MWh")), "unknown price unit 'USD/MWh'"),
        (_slots(_slot(1.0, None)), "unknown price unit None"),
        (_slots(_slot("12.3")), "not a number"),
        (_slots(_slot(1.0, minutes=45)), "no supported resolution"),
        (_slots({"marketprice": 1.0, "unit": "Eur/MWh"}), "malformed slot"),
        (b"{not json", "not JSON"),
        (b'{"object": "list"}', "no 'data' list"),
        (b"[]", "no 'data' list"),
    ],
)
def test_bad_answers_raise(document: bytes, message: str) -> None:
    with pytest.raises(AwattarError, match=message):
        parse_awattar(document, bidding_zone="AT")


def test_empty_data_is_no_ticks() -> None:
    assert parse_awattar(b'{"object": "list", "data": []}', bidding_zone="AT") == []


# -- client against a real local HTTP server ----------------------------------------------------

ROUTES: dict[str, tuple[int, bytes]] = {
    "/v1/marketdata": (200, JAN),
    "/limited": (429, b'{"error": "rate limit"}'),
    "/broken": (200, b"<html>maintenance</html>"),
}






@pytest.fixture(scope="module")
def server() -> Iterator[SampleServer]:
    with serve(ROUTES, "application/json") as srv:
        yield srv


async def test_client_sends_epoch_ms_window(server: SampleServer) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        client = AwattarClient(f"{server.url}/v1/marketdata", "AT", http)
        ticks = await client.fetch(utc(2023, 1, 14, 23), utc(2023, 1, 15, 23))
    assert len(ticks) == 24
    path, query = server.requests[-1]
    assert path == "/v1/marketdata"
    assert query == {"start": ["1673737200000"], "end": ["1673823600000"]}


async def test_client_clips_to_window_and_closes_own_http(server: SampleServer) -> None:
    async with AwattarClient(f"{server.url}/v1/marketdata", "AT") as client:
        ticks = await client.fetch(utc(2023, 1, 15, 6), utc(2023, 1, 15, 8))
    assert [(t.delivery_start, t.price_eur_mwh) for t in ticks] == [
        (utc(2023, 1, 15, 6), 42.76),
        (utc(2023, 1, 15, 7), 112.01),
    ]


@pytest.mark.parametrize(
    ("path", "status", "retriable", "message"),
    [("/limited", 429, True, "HTTP 429"), ("/missing", 404, False, "HTTP 404"),
     ("/broken", None, False, "not JSON")],
)  # fmt: skip
async def test_client_errors(
    server: SampleServer, path: str, status: int | None, retriable: bool, message: str
) -> None:
    async with AwattarClient(f"{server.url}{path}", "AT") as client:
        with pytest.raises(AwattarError, match=message) as info:
            await client.fetch(utc(2023, 1, 15), utc(2023, 1, 16))
    assert (info.value.status_code, info.value.retriable) == (status, retriable)


async def test_default_endpoints_per_zone() -> None:
    async with AwattarClient(bidding_zone="AT") as at, AwattarClient(None, "de_lu") as de:
        assert at.base_url == "https://api.awattar.at/v1/marketdata"
        assert de.base_url == AWATTAR_URLS["DE-LU"] == "https://api.awattar.de/v1/marketdata"
    with pytest.raises(KeyError, match="FR"):
        AwattarClient(bidding_zone="FR")


async def test_client_rejects_naive_datetimes() -> None:
    async with AwattarClient("http://127.0.0.1:9/v1/marketdata", "AT") as client:
        with pytest.raises(ValueError, match="naive"):
            await client.fetch(datetime(2023, 1, 15), utc(2023, 1, 16))
