"""ENTSO-E A44 parser on real samples, and the client against a real local HTTP server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from gateways.market_data.entsoe import (
    BIDDING_ZONE_EIC,
    EntsoeClient,
    EntsoeError,
    eic_for_zone,
    parse_a44,
    zone_for_eic,
)
from schemas.market import PriceTickReceived
from tests.sample_server import SampleServer, serve

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
DE_LU = (SAMPLES / "entsoe_a44_DE-LU_2024-06-01_PT60M+PT15M_A03.xml").read_bytes()
BE = (SAMPLES / "entsoe_a44_BE_2024-10-08_PT60M_A03.xml").read_bytes()
ACK_999 = (SAMPLES / "entsoe_ack_999_no-matching-data.xml").read_bytes()
ACK_OTHER = ACK_999.replace(b"<code>999</code>", b"<code>B11</code>").replace(
    b"No matching data found", b"Too many requested periods"
)
TOKEN = "s3cr3t-token-0123456789"
DE_LU_EIC = "10Y1001A1001A82H"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def by_resolution(ticks: list[PriceTickReceived], resolution: str) -> list[PriceTickReceived]:
    return [t for t in ticks if t.resolution == resolution]


# -- zones ----------------------------------------------------------------------------------


def test_eic_lookup_both_ways() -> None:
    assert eic_for_zone("AT") == "10YAT-APG------L"
    assert eic_for_zone("de_lu") == DE_LU_EIC
    assert eic_for_zone("BE") == "10YBE----------2"
    assert zone_for_eic(DE_LU_EIC) == "DE-LU"
    assert zone_for_eic("10YDK-1--------W") == "DK1"
    assert len(set(BIDDING_ZONE_EIC.values())) == len(BIDDING_ZONE_EIC)
    for zone, eic in BIDDING_ZONE_EIC.items():
        assert len(eic) == 16
        assert zone_for_eic(eic) == zone
    for zone in ("NL", "FR", "CH", "CZ", "PL", "HU", "SI", "DK2"):
        assert zone in BIDDING_ZONE_EIC
    with pytest.raises(KeyError, match="XX"):
        eic_for_zone("XX")
    with pytest.raises(KeyError):
        zone_for_eic("10YXX----------0")


# -- parser -------------------------------------------------------------------------------------


def test_de_lu_sample_has_four_series_in_two_resolutions() -> None:
    ticks = parse_a44(DE_LU, bidding_zone="DE-LU")
    quarter, hourly = by_resolution(ticks, "PT15M"), by_resolution(ticks, "PT60M")
    assert (len(quarter), len(hourly), len(ticks)) == (192, 48, 240)
    assert {t.market for t in quarter} == {"EPEX_DE_LU_DAY_AHEAD_15MIN"}
    assert {t.market for t in hourly} == {"EPEX_DE_LU_DAY_AHEAD_60MIN"}
    assert all(t.bidding_zone == "DE-LU" and t.data_source == "entsoe" for t in ticks)
    assert all(t.volume_mwh is None for t in ticks)
    # event-time order, 15-minute before hourly for the same start
    keys = [(t.delivery_start, t.resolution == "PT60M") for t in ticks]
    assert keys == sorted(keys)
    assert [t.delivery_start for t in quarter] == [
        utc(2024, 5, 31, 22) + i * timedelta(minutes=15) for i in range(192)
    ]
    assert all(t.delivery_end - t.delivery_start == timedelta(hours=1) for t in hourly)
    assert all(t.delivery_start.tzinfo is UTC for t in ticks)


def test_de_lu_first_and_last_prices() -> None:
    ticks = parse_a44(DE_LU, bidding_zone="DE-LU")
    hourly = by_resolution(ticks, "PT60M")
    quarter = by_resolution(ticks, "PT15M")
    assert (hourly[0].delivery_start, hourly[0].price_eur_mwh) == (utc(2024, 5, 31, 22), 88.58)
    assert (hourly[23].delivery_start, hourly[23].price_eur_mwh) == (utc(2024, 6, 1, 21), 65.39)
    assert (hourly[24].delivery_start, hourly[24].price_eur_mwh) == (utc(2024, 6, 1, 22), 35.71)
    assert (hourly[-1].delivery_start, hourly[-1].price_eur_mwh) == (utc(2024, 6, 2, 21), 99.16)
    assert quarter[0].price_eur_mwh == 90.9
    assert (quarter[95].delivery_start, quarter[95].price_eur_mwh) == (
        utc(2024, 6, 1, 21, 45),
        37.59,
    )
    assert quarter[96].price_eur_mwh == 78.2
    assert quarter[-1].price_eur_mwh == 20.09
    assert min(t.price_eur_mwh for t in quarter[96:]) == -79.91
    assert min(t.price_eur_mwh for t in hourly[24:]) == -19.58


def test_a03_omitted_position_repeats_previous_price() -> None:
    quarter = by_resolution(parse_a44(DE_LU, bidding_zone="DE-LU"), "PT15M")
    day2 = quarter[96:]  # third TimeSeries: 2024-06-01T22:00Z .. 2024-06-02T22:00Z
    pos53, pos54, pos55 = day2[52], day2[53], day2[54]
    assert pos53.delivery_start == utc(2024, 6, 2, 11, 0)
    assert pos54.delivery_start == utc(2024, 6, 2, 11, 15)
    assert pos53.price_eur_mwh == 0.0
    assert pos54.price_eur_mwh == pos53.price_eur_mwh
    assert pos55.price_eur_mwh == -16.75


def test_be_sample() -> None:
    ticks = parse_a44(BE, bidding_zone="BE")
    assert len(ticks) == 24
    assert {t.market for t in ticks} == {"EPEX_BE_DAY_AHEAD_60MIN"}
    assert (ticks[0].delivery_start, ticks[0].price_eur_mwh) == (utc(2024, 10, 7, 22), 64.98)
    assert (ticks[-1].delivery_start, ticks[-1].price_eur_mwh) == (utc(2024, 10, 8, 21), 50.0)
    peak = max(ticks, key=lambda t: t.price_eur_mwh)
    assert (peak.delivery_start, peak.price_eur_mwh) == (utc(2024, 10, 8, 17), 115.47)


def test_parser_is_namespace_agnostic() -> None:
    plain = BE.replace(b' xmlns="urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"', b"")
    assert plain != BE
    assert parse_a44(plain, bidding_zone="BE") == parse_a44(BE, bidding_zone="BE")


def _doc(curve_type: str, resolution: str = "PT60M", end: str = "2024-01-01T04:00Z") -> bytes:
    return f"""<?xml version="1.0"?>
<Publication_MarketDocument xmlns="urn:x"><type>A44</type><TimeSeries>
 <in_Domain.mRID codingScheme="A01">10YAT-APG------L</in_Domain.mRID>
 <currency_Unit.name>EUR</currency_Unit.name><price_Measure_Unit.name>MWH</price_Measure_Unit.name>
 <curveType>{curve_type}</curveType>
 <Period><timeInterval><start>2024-01-01T00:00Z</start><end>{end}</end></timeInterval>
  <resolution>{resolution}</resolution>
  <Point><position>1</position><price.amount>10.5</price.amount></Point>
  <Point><position>3</position><price.amount>-3</price.amount></Point>
 </Period></TimeSeries></Publication_MarketDocument>""".encode()


def test_a03_fills_gaps_and_up_to_end_of_interval_a01_does_not() -> None:
    a03 = parse_a44(_doc("A03"), bidding_zone="AT")
    assert [t.price_eur_mwh for t in a03] == [10.5, 10.5, -3.0, -3.0]
    assert [t.delivery_start.hour for t in a03] == [0, 1, 2, 3]
    a01 = parse_a44(_doc("A01"), bidding_zone="AT")
    assert [(t.delivery_start.hour, t.price_eur_mwh) for t in a01] == [(0, 10.5), (2, -3.0)]
    pt30 = parse_a44(_doc("A03", "PT30M", "2024-01-01T02:00Z"), bidding_zone="AT")
    assert [t.market for t in pt30] == ["EPEX_AT_DAY_AHEAD_30MIN"] * 4


def test_acknowledgements() -> None:
    assert parse_a44(ACK_999, bidding_zone="AT") == []
    with pytest.raises(EntsoeError, match="Too many requested periods") as info:
        parse_a44(ACK_OTHER, bidding_zone="AT")
    assert info.value.reason_code == "B11"


@pytest.mark.parametrize(
    ("document", "zone", "message"),
    [
        (b"not xml", "AT", "not XML"),
        (DE_LU, "AT", "expected AT"),
        (_doc("A02"), "AT", "curveType"),
        (_doc("A03", "P1D"), "AT", "resolution"),
        (_doc("A03", end="2024-01-01T02:00Z"), "AT", "outside 1..2"),
        (_doc("A03").replace(b">EUR<", b">USD<"), "AT", "USD/MWH"),
        (_doc("A03").replace(b">10.5<", b">n/a<"), "AT", "not a number"),
        (b"<Other_MarketDocument/>", "AT", "Publication_MarketDocument"),
    ],
)
def test_bad_documents_raise(document: bytes, zone: str, message: str) -> None:
    with pytest.raises(EntsoeError, match=message):
        parse_a44(document, bidding_zone=zone)


# -- client against a real local HTTP server ----------------------------------------------------


ROUTES: dict[str, tuple[int, bytes]] = {
    "/api": (200, DE_LU),
    "/ack": (200, ACK_999),
    "/ack400": (400, ACK_999),
    "/ack-other": (400, ACK_OTHER),
    "/unauthorized": (401, b"<html><body><h1>Unauthorized</h1></body></html>"),
    "/down": (503, b"Service Unavailable"),
}






@pytest.fixture(scope="module")
def server() -> Iterator[SampleServer]:
    with serve(ROUTES, "application/xml") as srv:
        yield srv


async def _fetch(
    url: str, start: datetime, end: datetime, zone: str = "DE-LU"
) -> list[PriceTickReceived]:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await EntsoeClient(url, TOKEN, http).fetch_day_ahead(zone, start, end)


async def test_client_builds_the_a44_query(server: SampleServer) -> None:
    ticks = await _fetch(f"{server.url}/api", utc(2024, 5, 31, 22), utc(2024, 6, 2, 22))
    assert len(ticks) == 240
    path, query = server.requests[-1]
    assert path == "/api"
    assert query == {
        "securityToken": [TOKEN],
        "documentType": ["A44"],
        "in_Domain": [DE_LU_EIC],
        "out_Domain": [DE_LU_EIC],
        "periodStart": ["202405312200"],
        "periodEnd": ["202406022200"],
    }


async def test_client_converts_to_utc_and_clips_to_window(server: SampleServer) -> None:
    vienna = ZoneInfo("Europe/Vienna")
    start, end = datetime(2024, 6, 2, tzinfo=vienna), datetime(2024, 6, 2, 12, tzinfo=vienna)
    ticks = await _fetch(f"{server.url}/api", start, end)
    assert server.requests[-1][1]["periodStart"] == ["202406012200"]
    assert server.requests[-1][1]["periodEnd"] == ["202406021000"]
    assert len(by_resolution(ticks, "PT60M")) == 12
    assert len(by_resolution(ticks, "PT15M")) == 48
    assert all(start <= t.delivery_start < end for t in ticks)


@pytest.mark.parametrize("path", ["/ack", "/ack400"])
async def test_client_no_matching_data_gives_empty_list(server: SampleServer, path: str) -> None:
    assert await _fetch(f"{server.url}{path}", utc(2030, 1, 1), utc(2030, 1, 2), "AT") == []
    assert server.requests[-1][1]["in_Domain"] == ["10YAT-APG------L"]


@pytest.mark.parametrize(
    ("path", "status", "retriable", "message"),
    [
        ("/unauthorized", 401, False, "HTTP 401"),
        ("/down", 503, True, "HTTP 503"),
        ("/ack-other", 400, False, "Too many requested periods"),
    ],
)
async def test_client_http_errors(
    server: SampleServer, path: str, status: int, retriable: bool, message: str
) -> None:
    with pytest.raises(EntsoeError, match=message) as info:
        await _fetch(f"{server.url}{path}", utc(2024, 6, 1), utc(2024, 6, 2))
    assert (info.value.status_code, info.value.retriable) == (status, retriable)
    assert TOKEN not in str(info.value)


async def test_client_connection_refused_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EntsoeError, match="request failed") as info:
        await _fetch(f"http://127.0.0.1:{port}/api", utc(2024, 6, 1), utc(2024, 6, 2))
    assert info.value.retriable
    assert info.value.__cause__ is None and TOKEN not in str(info.value)


async def test_client_owns_its_http_client_and_never_logs_the_token(
    server: SampleServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with EntsoeClient(f"{server.url}/api", SecretStr(TOKEN)) as client:
        assert TOKEN not in repr(client)
        ticks = await client.fetch_day_ahead("DE-LU", utc(2024, 6, 1), utc(2024, 6, 2))
    assert len(ticks) == 24 + 96
    assert "securityToken=***" in caplog.text
    assert TOKEN not in caplog.text


async def test_client_rejects_naive_datetimes_and_empty_token() -> None:
    with pytest.raises(ValueError, match="empty"):
        EntsoeClient("http://127.0.0.1:9/api", "")
    async with EntsoeClient("http://127.0.0.1:9/api", TOKEN) as client:
        with pytest.raises(ValueError, match="naive"):
            await client.fetch_day_ahead("AT", datetime(2024, 6, 1), utc(2024, 6, 2))
        with pytest.raises(ValueError, match="not after"):
            await client.fetch_day_ahead("AT", utc(2024, 6, 2), utc(2024, 6, 1))
