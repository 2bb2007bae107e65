"""aWATTar market data API: EPEX day-ahead prices for AT and DE-LU as `PriceTickReceived`.

``GET {base_url}?start=<epoch ms>&end=<epoch ms>`` answers
``{"object": "list", "data": [{"start_timestamp": ms, "end_timestamp": ms, "marketprice": x,
"unit": "Eur/MWh"}, ...]}``; timestamps are epoch milliseconds (UTC), slots are hourly (15-minute
slots are accepted too). Without start/end the API returns the next 24 hours. The public API
allows about 100 requests per day and answers HTTP 429 beyond that.

Source: https://www.awattar.at/services/api (AT: https://api.awattar.at/v1/marketdata,
DE: https://api.awattar.de/v1/marketdata).

Errors: `AwattarError` (`retriable` for transport errors, HTTP 429 and 5xx).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from schemas.market import RESOLUTION_SECONDS, PriceTickReceived, day_ahead_market

AWATTAR_URLS: dict[str, str] = {
    "AT": "https://api.awattar.at/v1/marketdata",
    "DE-LU": "https://api.awattar.de/v1/marketdata",
}
"""Bidding zone -> marketdata endpoint."""

DATA_SOURCE = "awattar"

UNIT_TO_EUR_MWH: dict[str, float] = {
    "eur/mwh": 1.0,
    "eur/kwh": 1000.0,
    "eur/wh": 1_000_000.0,
    "ct/kwh": 10.0,
    "cent/kwh": 10.0,
}
"""Lower-cased, space-free price unit -> factor that converts it to EUR/MWh."""

_SECONDS_RESOLUTION = {seconds: name for name, seconds in RESOLUTION_SECONDS.items()}


class AwattarError(Exception):
    """The aWATTar API failed or sent data that cannot be turned into price ticks.

    `retriable` says whether repeating the request later may succeed; `status_code` is the
    HTTP status when the failure is an HTTP answer.
    """

    def __init__(
        self, message: str, *, retriable: bool = False, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.status_code = status_code


def _normalise_zone(bidding_zone: str) -> str:
    return bidding_zone.strip().upper().replace("_", "-")


def _eur_mwh(price: float, unit: object) -> float:
    """`price` in `unit` converted to EUR/MWh; raises `AwattarError` for unknown units."""
    key = unit.replace(" ", "").lower() if isinstance(unit, str) else None
    factor = UNIT_TO_EUR_MWH.get(key) if key is not None else None
    if factor is None:
        raise AwattarError(
            f"unknown price unit {unit!r}; known: {', '.join(sorted(UNIT_TO_EUR_MWH))}"
        )
    return price * factor


def _tick(row: Mapping[str, Any], zone: str) -> PriceTickReceived:
    try:
        start_ms, end_ms = int(row["start_timestamp"]), int(row["end_timestamp"])
        price = row["marketprice"]
        unit = row.get("unit")
    except (KeyError, TypeError, ValueError) as exc:
        raise AwattarError(f"malformed slot {dict(row)!r}: {exc!r}") from None
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise AwattarError(f"marketprice {price!r} is not a number")
    seconds, rest = divmod(end_ms - start_ms, 1000)
    resolution = None if rest else _SECONDS_RESOLUTION.get(seconds)
    if resolution is None:
        raise AwattarError(f"slot {start_ms}..{end_ms} ms has no supported resolution")
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    try:
        return PriceTickReceived(
            market=day_ahead_market(zone, resolution),
            bidding_zone=zone,
            delivery_start=start,
            delivery_end=start + timedelta(seconds=RESOLUTION_SECONDS[resolution]),
            resolution=resolution,
            price_eur_mwh=_eur_mwh(float(price), unit),
            data_source=DATA_SOURCE,
        )
    except ValidationError as exc:
        raise AwattarError(f"invalid slot {dict(row)!r}: {exc}") from None


def parse_awattar(json_bytes: bytes | str, *, bidding_zone: str) -> list[PriceTickReceived]:
    """Price ticks (EUR/MWh) of an aWATTar marketdata answer, sorted by delivery_start.

    `data[]` slots with epoch-ms `start_timestamp`/`end_timestamp` (1 h or 15 min) and
    `marketprice` in `unit` ("Eur/MWh"; "Eur/kWh", "ct/kWh", ... are converted, see
    `UNIT_TO_EUR_MWH`). Markets are ``day_ahead_market(zone, resolution)``.

    Raises:
        AwattarError: not JSON, no `data` list, a slot without timestamps or price, an unknown
            unit, or a slot length that is not a supported resolution.
    """
    zone = _normalise_zone(bidding_zone)
    try:
        document = orjson.loads(json_bytes)
    except orjson.JSONDecodeError as exc:
        raise AwattarError(f"aWATTar answer is not JSON: {exc}") from None
    rows = document.get("data") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise AwattarError("aWATTar answer has no 'data' list of objects")
    return sorted((_tick(row, zone) for row in rows), key=lambda t: t.delivery_start)


def _epoch_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}; pass an aware UTC datetime")
    return int(value.timestamp() * 1000)


class AwattarClient:
    """Async aWATTar client for one bidding zone; `http` is borrowed, else owned and closed.

    `base_url` None picks the zone's endpoint from `AWATTAR_URLS` (AT or DE-LU).

    Raises:
        KeyError: `base_url` is None and the zone has no known endpoint.
    """

    def __init__(
        self,
        base_url: str | None = None,
        bidding_zone: str = "AT",
        http: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.bidding_zone = _normalise_zone(bidding_zone)
        if base_url is None:
            try:
                base_url = AWATTAR_URLS[self.bidding_zone]
            except KeyError:
                raise KeyError(f"no aWATTar endpoint for zone {bidding_zone!r}") from None
        self.base_url = base_url
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AwattarClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def fetch(self, start: datetime, end: datetime) -> list[PriceTickReceived]:
        """Ticks with ``start <= delivery_start < end`` (aware datetimes), prices in EUR/MWh.

        Raises:
            ValueError: naive datetimes or ``end <= start``.
            AwattarError: transport failure (retriable), HTTP error status (retriable for 429
                and 5xx) or an unusable answer (see `parse_awattar`).
        """
        params = {"start": _epoch_ms(start), "end": _epoch_ms(end)}
        if end <= start:
            raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
        try:
            response = await self._http.get(self.base_url, params=params)
        except httpx.HTTPError as exc:
            raise AwattarError(
                f"aWATTar request failed: {type(exc).__name__}: {exc}",
                retriable=isinstance(exc, httpx.TransportError),
            ) from None
        status = response.status_code
        if status != 200:
            snippet = " ".join(response.text.split())[:200]
            raise AwattarError(
                f"aWATTar answered HTTP {status}: {snippet}",
                status_code=status,
                retriable=status == 429 or status >= 500,
            )
        ticks = parse_awattar(response.content, bidding_zone=self.bidding_zone)
        return [t for t in ticks if start <= t.delivery_start < end]
