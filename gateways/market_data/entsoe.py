"""ENTSO-E Transparency Platform: day-ahead prices (document type A44) as `PriceTickReceived`.

`parse_a44` turns a Publication_MarketDocument into ticks; `EntsoeClient` queries the REST API
(``GET {base_url}?securityToken=..&documentType=A44&in_Domain=EIC&out_Domain=EIC&periodStart=
yyyyMMddHHmm&periodEnd=yyyyMMddHHmm``, times in UTC). Prices are EUR/MWh, timestamps aware UTC.

Source: ENTSO-E Transparency Platform RESTful API guide (document A44, curve types A01/A03,
Acknowledgement_MarketDocument reason 999 "No matching data found") and the EIC codes of the
bidding zones it publishes. The API limits one A44 request to one year.

Errors: everything the API or the document can get wrong raises `EntsoeError`; its `retriable`
flag is true for transport errors, HTTP 429 and 5xx. The security token never appears in an
error message or in httpx's request log line (a filter redacts it).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import TracebackType

import httpx
from pydantic import SecretStr

from schemas.market import RESOLUTION_SECONDS, PriceTickReceived, day_ahead_market

DEFAULT_BASE_URL = "https://web-api.tp.entsoe.eu/api"
DATA_SOURCE = "entsoe"
NO_MATCHING_DATA = "999"

BIDDING_ZONE_EIC: dict[str, str] = {
    "AT": "10YAT-APG------L", "BE": "10YBE----------2", "BG": "10YCA-BULGARIA-R",
    "CH": "10YCH-SWISSGRIDZ", "CZ": "10YCZ-CEPS-----N", "DE-LU": "10Y1001A1001A82H",
    "DE-AT-LU": "10Y1001A1001A63L",  # joint zone until 2018-09-30
    "DK1": "10YDK-1--------W", "DK2": "10YDK-2--------M", "EE": "10Y1001A1001A39I",
    "ES": "10YES-REE------0", "FI": "10YFI-1--------U", "FR": "10YFR-RTE------C",
    "GR": "10YGR-HTSO-----Y", "HR": "10YHR-HEP------M", "HU": "10YHU-MAVIR----U",
    "IE-SEM": "10Y1001A1001A59C", "IT-NORD": "10Y1001A1001A73I", "LT": "10YLT-1001A0008Q",
    "LV": "10YLV-1001A00074", "NL": "10YNL----------L", "NO1": "10YNO-1--------2",
    "NO2": "10YNO-2--------T", "NO3": "10YNO-3--------J", "NO4": "10YNO-4--------9",
    "NO5": "10Y1001A1001A48H", "PL": "10YPL-AREA-----S", "PT": "10YPT-REN------W",
    "RO": "10YRO-TEL------P", "RS": "10YCS-SERBIATSOV", "SE1": "10Y1001A1001A44P",
    "SE2": "10Y1001A1001A45N", "SE3": "10Y1001A1001A46L", "SE4": "10Y1001A1001A47J",
    "SI": "10YSI-ELES-----O", "SK": "10YSK-SEPS-----K",
}  # fmt: skip
"""Bidding zone code (as used in market ids) -> ENTSO-E EIC area code."""

_EIC_ZONE: dict[str, str] = {eic: zone for zone, eic in BIDDING_ZONE_EIC.items()}
_RESOLUTION_ALIASES = {"PT1H": "PT60M"}
_TOKEN_RE = re.compile(r"(securityToken=)[^&\s\"'>]+")


class EntsoeError(Exception):
    """The ENTSO-E API failed or answered with something that is not usable day-ahead data.

    `retriable` says whether repeating the same request later may succeed; `status_code` is the
    HTTP status (None when the failure is not an HTTP answer); `reason_code` the acknowledgement
    reason code (e.g. ``"999"``) if the API sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        retriable: bool = False,
        status_code: int | None = None,
        reason_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.status_code = status_code
        self.reason_code = reason_code


def normalise_zone(bidding_zone: str) -> str:
    """Canonical zone code: upper case, ``_`` -> ``-`` (``"de_lu"`` -> ``"DE-LU"``)."""
    return bidding_zone.strip().upper().replace("_", "-")


def eic_for_zone(bidding_zone: str) -> str:
    """EIC area code of a bidding zone, e.g. ``"AT"`` -> ``"10YAT-APG------L"``.

    Raises:
        KeyError: the zone is not in `BIDDING_ZONE_EIC`.
    """
    try:
        return BIDDING_ZONE_EIC[normalise_zone(bidding_zone)]
    except KeyError:
        raise KeyError(f"unknown bidding zone {bidding_zone!r}") from None


def zone_for_eic(eic: str) -> str:
    """Bidding zone of an EIC area code, e.g. ``"10Y1001A1001A82H"`` -> ``"DE-LU"``.

    Raises:
        KeyError: the EIC code is not in `BIDDING_ZONE_EIC`.
    """
    try:
        return _EIC_ZONE[eic.strip()]
    except KeyError:
        raise KeyError(f"unknown EIC area code {eic!r}") from None


# -- XML parsing (namespace-agnostic) -----------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, path: str, *, required: bool = True) -> str | None:
    """Text of the child at a ``/``-separated local-name path, stripped."""
    node: ET.Element | None = element
    for name in path.split("/"):
        found = _children(node, name) if node is not None else []
        node = found[0] if found else None
    if node is None or node.text is None or not node.text.strip():
        if required:
            raise EntsoeError(f"<{_local(element.tag)}> has no <{path}>")
        return None
    return node.text.strip()


def _number(text: str | None, kind: type[int] | type[float], what: str) -> float:
    try:
        return kind(text or "")
    except ValueError:
        raise EntsoeError(f"{what} {text!r} is not a number") from None


def _time(text: str | None) -> datetime:
    try:
        value = datetime.fromisoformat(text or "")
    except ValueError:
        raise EntsoeError(f"timestamp {text!r} is not ISO 8601") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_xml(xml: bytes | str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise EntsoeError(f"ENTSO-E answer is not XML: {exc}") from None


def _check_acknowledgement(root: ET.Element, status_code: int | None = None) -> None:
    """Return if the acknowledgement says "no matching data" (999), else raise `EntsoeError`."""
    reasons = [
        (_text(r, "code", required=False), _text(r, "text", required=False))
        for r in _children(root, "Reason")
    ]
    if any(code == NO_MATCHING_DATA for code, _ in reasons):
        return
    detail = "; ".join(f"{code}: {text}" for code, text in reasons) or "no reason given"
    raise EntsoeError(
        _TOKEN_RE.sub(r"\1***", f"ENTSO-E rejected the request ({detail})"),
        status_code=status_code,
        retriable=status_code is not None and (status_code == 429 or status_code >= 500),
        reason_code=reasons[0][0] if reasons else None,
    )


def _period_prices(period: ET.Element, curve_type: str) -> Iterator[tuple[datetime, str, float]]:
    """(delivery_start, resolution, price EUR/MWh) of one <Period>, A03 gaps filled."""
    start = _time(_text(period, "timeInterval/start"))
    end = _time(_text(period, "timeInterval/end"))
    raw_resolution = _text(period, "resolution") or ""
    resolution = _RESOLUTION_ALIASES.get(raw_resolution, raw_resolution)
    if resolution not in RESOLUTION_SECONDS:
        raise EntsoeError(f"unsupported resolution {raw_resolution!r}")
    step = timedelta(seconds=RESOLUTION_SECONDS[resolution])
    if end <= start or (end - start) % step:
        raise EntsoeError(f"period {start}..{end} is not a whole number of {resolution}")
    n_slots = (end - start) // step
    prices: dict[int, float] = {}
    for point in _children(period, "Point"):
        position = int(_number(_text(point, "position"), int, "position"))
        if not 1 <= position <= n_slots or position in prices:
            raise EntsoeError(f"position {position} is duplicate or outside 1..{n_slots}")
        prices[position] = _number(_text(point, "price.amount"), float, "price.amount")
    if curve_type == "A01":
        for position in sorted(prices):
            yield start + (position - 1) * step, resolution, prices[position]
    elif curve_type == "A03":
        if prices and 1 not in prices:
            raise EntsoeError("A03 period does not start with position 1")
        price: float | None = None
        for position in range(1, n_slots + 1):
            price = prices.get(position, price)
            if price is not None:
                yield start + (position - 1) * step, resolution, price
    else:
        raise EntsoeError(f"unsupported curveType {curve_type!r}")


def parse_a44(xml: bytes | str, *, bidding_zone: str) -> list[PriceTickReceived]:
    """Day-ahead price ticks of an A44 answer, sorted by (delivery_start, resolution).

    Every TimeSeries and Period is read (PT15M, PT30M, PT60M); curve type A03 repeats a price
    over omitted positions until the next given position or the end of the period, A01 takes
    the points as given. A (resolution, delivery_start) already seen keeps its first price.
    Markets are ``day_ahead_market(zone, resolution)``, e.g. ``EPEX_DE_LU_DAY_AHEAD_15MIN``.

    Returns [] for an Acknowledgement_MarketDocument with reason 999 ("No matching data found").

    Raises:
        EntsoeError: not XML, another acknowledgement reason (message carries its text), not an
            A44 Publication_MarketDocument, a currency other than EUR or unit other than MWH, a
            series for another zone's EIC, or malformed periods/points.
    """
    zone = normalise_zone(bidding_zone)
    root = _parse_xml(xml)
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        _check_acknowledgement(root)
        return []
    if kind != "Publication_MarketDocument":
        raise EntsoeError(f"expected Publication_MarketDocument, got {kind}")
    doc_type = _text(root, "type", required=False)
    if doc_type not in (None, "A44"):
        raise EntsoeError(f"expected document type A44, got {doc_type}")
    expected_eic = BIDDING_ZONE_EIC.get(zone)
    seen: dict[tuple[str, datetime], float] = {}
    for series in _children(root, "TimeSeries"):
        in_domain = _text(series, "in_Domain.mRID", required=False)
        if expected_eic and in_domain and in_domain != expected_eic:
            raise EntsoeError(f"series for {in_domain}, expected {zone} ({expected_eic})")
        currency = _text(series, "currency_Unit.name", required=False) or "EUR"
        unit = _text(series, "price_Measure_Unit.name", required=False) or "MWH"
        if (currency, unit) != ("EUR", "MWH"):
            raise EntsoeError(f"prices in {currency}/{unit}, expected EUR/MWH")
        curve_type = _text(series, "curveType", required=False) or "A01"
        for period in _children(series, "Period"):
            for start, resolution, price in _period_prices(period, curve_type):
                seen.setdefault((resolution, start), price)
    ordered = sorted(seen.items(), key=lambda kv: (kv[0][1], RESOLUTION_SECONDS[kv[0][0]]))
    return [
        PriceTickReceived(
            market=day_ahead_market(zone, resolution),
            bidding_zone=zone,
            delivery_start=start,
            delivery_end=start + timedelta(seconds=RESOLUTION_SECONDS[resolution]),
            resolution=resolution,
            price_eur_mwh=price,
            data_source=DATA_SOURCE,
        )
        for (resolution, start), price in ordered
    ]


# -- HTTP client --------------------------------------------------------------------------------


class _RedactTokenFilter(logging.Filter):
    """Rewrites log records that contain ``securityToken=...`` (httpx logs request URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "securityToken=" in message:
            record.msg, record.args = _TOKEN_RE.sub(r"\1***", message), None
        return True


def _install_log_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactTokenFilter) for f in logger.filters):
        logger.addFilter(_RedactTokenFilter())


def _api_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}; pass an aware UTC datetime")
    return value.astimezone(UTC).strftime("%Y%m%d%H%M")


class EntsoeClient:
    """Async client for ENTSO-E day-ahead prices; `http` is borrowed, else owned and closed.

    `base_url` is usually `DEFAULT_BASE_URL`; `token` is the API security token (``str`` or
    pydantic ``SecretStr``), sent as the ``securityToken`` query parameter and redacted from
    errors and httpx log lines.
    """

    def __init__(
        self,
        base_url: str,
        token: str | SecretStr,
        http: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self._base_url = base_url
        self._token = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not self._token:
            raise ValueError("ENTSO-E security token is empty")
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout_s)
        _install_log_redaction()

    def __repr__(self) -> str:
        return f"EntsoeClient(base_url={self._base_url!r}, token='***')"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> EntsoeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _redact(self, text: str) -> str:
        text = _TOKEN_RE.sub(r"\1***", text)
        return text.replace(self._token, "***") if self._token else text

    async def fetch_day_ahead(
        self, bidding_zone: str, start: datetime, end: datetime
    ) -> list[PriceTickReceived]:
        """Day-ahead ticks of `bidding_zone` with ``start <= delivery_start < end`` (aware).

        The API answers whole delivery days; ticks outside [start, end) are dropped. Returns []
        when ENTSO-E has no data (acknowledgement 999).

        Raises:
            KeyError: unknown bidding zone.
            ValueError: naive datetimes or ``end <= start``.
            EntsoeError: transport failure or timeout (retriable), HTTP error status (retriable
                for 429 and 5xx; 401 for a bad token), or an unusable document (see `parse_a44`).
        """
        eic = eic_for_zone(bidding_zone)
        params = {
            "securityToken": self._token,
            "documentType": "A44",
            "in_Domain": eic,
            "out_Domain": eic,
            "periodStart": _api_time(start),
            "periodEnd": _api_time(end),
        }
        if end <= start:
            raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
        try:
            response = await self._http.get(self._base_url, params=params)
        except httpx.HTTPError as exc:
            raise EntsoeError(
                self._redact(f"ENTSO-E request failed: {type(exc).__name__}: {exc}"),
                retriable=isinstance(exc, httpx.TransportError),
            ) from None
        status = response.status_code
        if status != 200:
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError:
                root = None
            if root is not None and _local(root.tag) == "Acknowledgement_MarketDocument":
                _check_acknowledgement(root, status)
                return []
            snippet = " ".join(response.text.split())[:200]
            raise EntsoeError(
                self._redact(f"ENTSO-E answered HTTP {status}: {snippet}"),
                status_code=status,
                retriable=status == 429 or status >= 500,
            )
        ticks = parse_a44(response.content, bidding_zone=bidding_zone)
        return [t for t in ticks if start <= t.delivery_start < end]
