"""The envelope codec: hypothesis round trips for every registered payload type, decode errors.

The strategies here (`payloads`, `envelopes`) are also used by `test_schema_export.py`. A payload
type without an explicit strategy gets one derived from its field annotations; a type with
cross-field validators (like `PriceTickReceived`) needs an entry in `EXPLICIT_PAYLOADS`.
"""

from __future__ import annotations

import base64
import types
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo

import annotated_types
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ValidationError

import schemas.catalog
import schemas.envelope as envelope_module
from schemas.base import Payload
from schemas.dead_letter import MessageDeadLettered
from schemas.envelope import (
    REGISTRY,
    Envelope,
    MessageDecodeError,
    caused_by,
    decode,
    encode,
    headers,
    new_envelope,
)
from schemas.market import RESOLUTION_SECONDS, PriceTickReceived, Resolution

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""orjson encodes 64-bit integers only; larger ones cannot be on the wire."""

# --- strategies -----------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [
            UTC,
            timezone(timedelta(hours=-5)),
            timezone(timedelta(hours=5, minutes=30)),
            ZoneInfo("Europe/Vienna"),
        ]
    ),
)
"""Aware datetimes in several zones; the schemas normalise them to UTC."""

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
"""NaN and infinity are not JSON: pydantic writes them as null, which then fails to decode."""


def _bounds(metadata: Sequence[Any]) -> dict[str, Any]:
    """Numeric bounds from annotated-types constraints (`Field(ge=..)` and friends)."""
    bounds: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["min_value"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds["min_value"], bounds["exclude_min"] = item.gt, True
        elif isinstance(item, annotated_types.Le):
            bounds["max_value"] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds["max_value"], bounds["exclude_max"] = item.lt, True
    return bounds


def field_strategy(annotation: Any, metadata: Sequence[Any] = ()) -> st.SearchStrategy[Any]:
    """A strategy for one model field: JSON-safe numbers, aware datetimes, nested models,
    `st.from_type` for everything else."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return field_strategy(base, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        options = [field_strategy(a, metadata) for a in args if a is not type(None)]
        return st.one_of([st.none(), *options] if type(None) in args else options)
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if origin is tuple and len(get_args(annotation)) == 2 and get_args(annotation)[1] is Ellipsis:
        return st.lists(field_strategy(get_args(annotation)[0]), max_size=4).map(tuple)
    if origin is dict:
        key, value = get_args(annotation)
        return st.dictionaries(field_strategy(key), field_strategy(value), max_size=4)
    bounds = _bounds(metadata)
    if annotation is bool:
        return st.booleans()
    if annotation is str:
        min_len = max([m.min_length for m in metadata if isinstance(m, annotated_types.MinLen)]
                      or [0])
        max_len = min([m.max_length for m in metadata if isinstance(m, annotated_types.MaxLen)]
                      or [40])
        return st.text(min_size=min_len, max_size=max_len)
    if annotation is int:
        low = max(INT64_MIN, bounds.get("min_value", INT64_MIN) + bounds.get("exclude_min", 0))
        high = min(INT64_MAX, bounds.get("max_value", INT64_MAX) - bounds.get("exclude_max", 0))
        return st.integers(min_value=low, max_value=high)
    if annotation is float:
        return st.floats(allow_nan=False, allow_infinity=False, **bounds)
    if annotation is Decimal:
        low, high = bounds.get("min_value"), bounds.get("max_value")
        strategy = st.decimals(min_value=low, max_value=high, allow_nan=False,
                               allow_infinity=False, places=6)
        if bounds.get("exclude_min"):
            strategy = strategy.filter(lambda d: d > low)
        if bounds.get("exclude_max"):
            strategy = strategy.filter(lambda d: d < high)
        return strategy
    if annotation is AwareDatetime or annotation is datetime:
        return instants
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strategy(annotation)
    return st.from_type(annotation)


def model_strategy(cls: type[BaseModel]) -> st.SearchStrategy[Any]:
    """`st.builds(cls)` with a `field_strategy` for every field."""
    fields = {
        name: field_strategy(info.annotation, info.metadata)
        for name, info in cls.model_fields.items()
    }

    def build(values: dict[str, Any]) -> BaseModel | None:
        try:
            return cls(**values)
        except ValidationError:  # cross-field rules (e.g. delivery_end after delivery_start)
            return None

    return st.fixed_dictionaries(fields).map(build).filter(lambda m: m is not None)


@st.composite
def price_ticks(draw: st.DrawFn) -> PriceTickReceived:
    """Price ticks whose delivery period lasts exactly their resolution."""
    resolution: str = draw(st.sampled_from(get_args(Resolution)))
    start = draw(instants)
    end = start.astimezone(UTC) + timedelta(seconds=RESOLUTION_SECONDS[resolution])
    return draw(
        st.builds(
            PriceTickReceived,
            delivery_start=st.just(start),
            delivery_end=st.just(end),
            resolution=st.just(resolution),
            price_eur_mwh=finite_floats,
            volume_mwh=st.none() | st.floats(min_value=0, allow_infinity=False),
            market=st.text(),
            bidding_zone=st.text(),
            data_source=st.text(),
        )
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


dead_letters = st.builds(
    MessageDeadLettered,
    original_topic=st.sampled_from([t.name for t in schemas.catalog.TOPICS]) | st.text(),
    original_partition=st.integers(min_value=0, max_value=2**31 - 1),
    original_offset=st.integers(min_value=0, max_value=INT64_MAX),
    original_timestamp=st.none() | instants,
    key_b64=st.none() | st.binary().map(_b64),
    value_b64=st.binary().map(_b64),
    error=st.text(),
    processor=st.text(),
)

EXPLICIT_PAYLOADS: dict[type[Payload], st.SearchStrategy[Any]] = {
    PriceTickReceived: price_ticks(),
    MessageDeadLettered: dead_letters,
}
"""Hand-written strategies; other types get `model_strategy` (e.g. MarketIndicatorsUpdated)."""


def payloads(cls: type[Payload]) -> st.SearchStrategy[Any]:
    """Valid payloads of `cls`."""
    explicit = EXPLICIT_PAYLOADS.get(cls)
    return model_strategy(cls) if explicit is None else explicit


def envelopes(cls: type[Payload]) -> st.SearchStrategy[Envelope[Any]]:
    """Envelopes around valid `cls` payloads, with and without correlation/causation ids."""
    return st.builds(
        new_envelope,
        payloads(cls),
        occurred_at=instants,
        source=st.text(),
        event_id=st.uuids(),
        correlation_id=st.none() | st.uuids(),
        causation_id=st.none() | st.uuids(),
        key=st.none() | st.text(),
    )


REGISTERED = sorted(REGISTRY.types.values(), key=lambda cls: cls.event_type)
by_event_type = pytest.mark.parametrize("cls", REGISTERED, ids=lambda cls: cls.event_type)

# --- round trips ----------------------------------------------------------------------------------


@by_event_type
@settings(deadline=None)
@given(data=st.data())
def test_decode_inverts_encode(cls: type[Payload], data: st.DataObject) -> None:
    envelope = data.draw(envelopes(cls))

    decoded = decode(encode(envelope))

    assert decoded == envelope
    assert type(decoded.payload) is cls
    assert decoded.occurred_at.tzinfo == UTC
    assert headers(decoded) == [
        ("event_type", cls.event_type.encode()),
        ("schema_version", str(cls.schema_version).encode()),
    ]


@settings(deadline=None)
@given(parent=envelopes(PriceTickReceived), child=payloads(MessageDeadLettered))
def test_caused_by_links_child_to_parent(parent: Envelope[Any], child: MessageDeadLettered) -> None:
    follow_up = caused_by(parent, child, source="test")

    assert follow_up.causation_id == parent.event_id
    assert follow_up.correlation_id == (parent.correlation_id or parent.event_id)
    assert decode(encode(follow_up)) == follow_up


def test_every_payload_on_a_topic_is_registered() -> None:
    for topic in schemas.catalog.all_topics():
        for cls in topic.payloads:
            assert REGISTRY.types[cls.event_type] is cls, (topic.name, cls)


def test_encode_writes_utc_and_nulls() -> None:
    tick = PriceTickReceived(
        market="EPEX_AT_DAY_AHEAD_60MIN",
        bidding_zone="AT",
        delivery_start=datetime(2023, 1, 15, 1, tzinfo=ZoneInfo("Europe/Vienna")),
        delivery_end=datetime(2023, 1, 15, 1, tzinfo=UTC),
        resolution="PT60M",
        price_eur_mwh=-1.5,
        data_source="file",
    )
    envelope = new_envelope(tick, occurred_at=tick.delivery_start, source="test")

    raw = orjson.loads(encode(envelope))

    assert raw["key"] == "EPEX_AT_DAY_AHEAD_60MIN"
    assert raw["occurred_at"] == "2023-01-15T00:00:00Z"
    assert raw["correlation_id"] is None and raw["causation_id"] is None
    assert raw["payload"]["volume_mwh"] is None


# --- decode errors --------------------------------------------------------------------------------


def _raw_tick(**envelope_changes: Any) -> dict[str, Any]:
    tick = PriceTickReceived(
        market="EPEX_AT_DAY_AHEAD_60MIN",
        bidding_zone="AT",
        delivery_start=datetime(2023, 1, 15, tzinfo=UTC),
        delivery_end=datetime(2023, 1, 15, 1, tzinfo=UTC),
        resolution="PT60M",
        price_eur_mwh=101.25,
        volume_mwh=12.0,
        data_source="file",
    )
    raw: dict[str, Any] = orjson.loads(
        encode(new_envelope(tick, occurred_at=tick.delivery_start, source="test"))
    )
    return {**raw, **envelope_changes}


def _reason(data: bytes | str) -> str:
    with pytest.raises(MessageDecodeError) as info:
        decode(data)
    assert isinstance(info.value, ValueError)
    assert info.value.reason == str(info.value)
    return info.value.reason


def test_valid_sample_decodes() -> None:
    assert decode(orjson.dumps(_raw_tick())).payload.price_eur_mwh == 101.25


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00 not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"event_id": ', "not valid JSON"),
        (b"[1, 2]", "envelope must be a JSON object, got list"),
        (b'"PriceTickReceived"', "envelope must be a JSON object, got str"),
        (b"{}", "envelope misses field(s): event_id, event_type, schema_version"),
    ],
)
def test_malformed_bytes_are_rejected(data: bytes, reason: str) -> None:
    assert _reason(data).startswith(reason)


def test_missing_payload_is_rejected() -> None:
    raw = _raw_tick()
    del raw["payload"]
    assert _reason(orjson.dumps(raw)) == "envelope misses field(s): payload"


@pytest.mark.parametrize("event_type", ["NoSuchEvent", "priceTickReceived", 7, None])
def test_unknown_event_type_is_rejected(event_type: object) -> None:
    assert _reason(orjson.dumps(_raw_tick(event_type=event_type))) == (
        f"unknown event_type {event_type!r}"
    )


def test_newer_schema_version_is_rejected() -> None:
    newer = PriceTickReceived.schema_version + 1
    reason = _reason(orjson.dumps(_raw_tick(schema_version=newer)))
    assert reason == (
        f"PriceTickReceived schema_version {newer} is newer than supported "
        f"{PriceTickReceived.schema_version}"
    )


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, None])
def test_invalid_schema_version_is_rejected(version: object) -> None:
    assert _reason(orjson.dumps(_raw_tick(schema_version=version))).startswith(
        "schema_version must be a positive integer"
    )


@pytest.mark.parametrize("payload", [[], "x", None, 1])
def test_non_object_payload_is_rejected(payload: object) -> None:
    assert _reason(orjson.dumps(_raw_tick(payload=payload))) == "payload must be a JSON object"


@pytest.mark.parametrize(
    ("payload_changes", "expected"),
    [
        ({"price_eur_mwh": "cheap"}, "payload.price_eur_mwh"),
        ({"resolution": "PT5M"}, "payload.resolution"),
        ({"volume_mwh": -1}, "payload.volume_mwh"),
        ({"delivery_start": "2023-01-15T00:00:00"}, "payload.delivery_start"),  # naive
        ({"delivery_end": "2023-01-15T00:15:00Z"}, "does not last PT60M"),
        ({"unexpected": 1}, "payload.unexpected"),
    ],
)
def test_invalid_payload_is_rejected(payload_changes: dict[str, Any], expected: str) -> None:
    raw = _raw_tick()
    raw["payload"] = {**raw["payload"], **payload_changes}
    reason = _reason(orjson.dumps(raw))
    assert reason.startswith("invalid PriceTickReceived: ")
    assert expected in reason


def test_missing_payload_field_is_rejected() -> None:
    raw = _raw_tick()
    del raw["payload"]["market"]
    assert _reason(orjson.dumps(raw)) == "invalid PriceTickReceived: payload.market: Field required"


@pytest.mark.parametrize(
    ("field", "value"), [("event_id", "not-a-uuid"), ("occurred_at", "yesterday"), ("key", 5)]
)
def test_invalid_envelope_field_is_rejected(field: str, value: object) -> None:
    assert _reason(orjson.dumps(_raw_tick(**{field: value}))).startswith(
        f"invalid PriceTickReceived: {field}: "
    )


class _Renamed(Payload):
    """v2 of a test-only event: `name` was called `title` in v1."""

    event_type = "TestRenamed"
    schema_version = 2
    name: str

    def partition_key(self) -> str:
        return self.name


def _v1_renamed() -> bytes:
    raw = _raw_tick(event_type="TestRenamed", schema_version=1, payload={"title": "x"})
    return orjson.dumps(raw)


def test_old_version_is_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY.types, "TestRenamed", _Renamed)
    monkeypatch.setitem(REGISTRY.upcasters, ("TestRenamed", 1), lambda p: {"name": p["title"]})

    decoded = decode(_v1_renamed())

    assert decoded.payload == _Renamed(name="x")
    assert decoded.schema_version == 2


def test_old_version_without_upcaster_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY.types, "TestRenamed", _Renamed)
    assert _reason(_v1_renamed()) == "no upcaster for TestRenamed v1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX) | finite_floats | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


_TICK_FIELDS = [(name,) for name in sorted(_raw_tick())] + [
    ("payload", name) for name in sorted(_raw_tick()["payload"])
]


@settings(deadline=None)
@given(path=st.sampled_from(_TICK_FIELDS), value=json_values)
def test_corrupted_messages_decode_or_raise_decode_error(
    path: tuple[str, ...], value: object
) -> None:
    """Whatever one field is replaced with, decode returns an envelope or raises the one error."""
    raw = _raw_tick()
    target = raw["payload"] if len(path) == 2 else raw
    target[path[-1]] = value
    try:
        decoded = decode(orjson.dumps(raw))
    except MessageDecodeError as exc:
        assert exc.reason
    else:
        assert isinstance(decoded, Envelope)


# --- the codec's fast paths agree with their references -------------------------------------------


@by_event_type
@settings(deadline=None)
@given(data=st.data())
def test_encode_is_byte_identical_to_orjson_of_the_json_dump(
    cls: type[Payload], data: st.DataObject
) -> None:
    envelope = data.draw(envelopes(cls))

    assert encode(envelope) == orjson.dumps(envelope.model_dump(mode="json"))


class _Counted(Payload):
    """A test-only event with an unbounded integer."""

    event_type = "TestCounted"
    n: int
    label: str = ""

    def partition_key(self) -> str:
        return "k"


@pytest.mark.parametrize("n", [2**64, -(2**63) - 1, 10**30])
def test_encode_refuses_integers_beyond_64_bits(n: int) -> None:
    envelope = new_envelope(_Counted(n=n), occurred_at=datetime(2023, 1, 1, tzinfo=UTC), source="t")
    with pytest.raises(orjson.JSONEncodeError):
        encode(envelope)


@pytest.mark.parametrize("n", [2**63 - 1, 2**64 - 1, INT64_MIN, 12345678901234567890])
def test_encode_keeps_long_digit_runs_that_fit(n: int) -> None:
    payload = _Counted(n=n, label="1234567890123456789012345")
    envelope = new_envelope(payload, occurred_at=datetime(2023, 1, 1, tzinfo=UTC), source="t")
    assert encode(envelope) == orjson.dumps(envelope.model_dump(mode="json"))


def _checked(data: bytes) -> Envelope[Any] | str:
    """What the full checks (`decode` without its fast path) make of `data`."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    try:
        return envelope_module._decode_checked(data, raw)
    except MessageDecodeError as exc:
        return exc.reason


def _decoded(data: bytes) -> Envelope[Any] | str:
    try:
        return decode(data)
    except MessageDecodeError as exc:
        return "not valid JSON" if exc.reason.startswith("not valid JSON") else exc.reason


@settings(deadline=None)
@given(
    path=st.sampled_from(_TICK_FIELDS),
    value=json_values | st.sampled_from([True, False, 1, 1.0, "1", 2, 0, -1, 2**64 - 1, {}, []]),
)
def test_fast_path_decodes_exactly_as_the_full_checks(path: tuple[str, ...], value: object) -> None:
    raw = _raw_tick()
    target = raw["payload"] if len(path) == 2 else raw
    target[path[-1]] = value
    data = orjson.dumps(raw)

    assert _decoded(data) == _checked(data)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b'"junk": NaN', "not valid JSON"),
        (b'"junk": -Infinity', "not valid JSON"),
        (b'"junk": 1e400', "not valid JSON"),
        (b'"schema_version": "1"', "schema_version must be a positive integer"),
    ],
)
def test_what_only_pydantic_accepts_is_still_rejected(extra: bytes, reason: str) -> None:
    """pydantic-core parses NaN, Infinity and overflowing numbers (the wire format is JSON) and
    reads the string "1" as an int; a repeated key counts with its last value."""
    text = orjson.dumps(_raw_tick())[:-1] + b", " + extra + b"}"
    assert _reason(text).startswith(reason)


@by_event_type
@settings(deadline=None, max_examples=30)
@given(data=st.data())
def test_new_envelope_builds_what_validation_builds(cls: type[Payload],
                                                    data: st.DataObject) -> None:
    """new_envelope's direct construction (UTC datetimes, UUIDs, str) equals pydantic's."""
    payload = data.draw(payloads(cls))
    at = data.draw(instants)
    ids = [data.draw(st.uuids()), data.draw(st.none() | st.uuids()),
           data.draw(st.none() | st.uuids())]
    built = new_envelope(payload, occurred_at=at, source="s", event_id=ids[0],
                         correlation_id=ids[1], causation_id=ids[2])
    validated = envelope_module._envelope_model(cls)(
        event_id=ids[0], event_type=cls.event_type, schema_version=cls.schema_version,
        occurred_at=at, source="s", correlation_id=ids[1], causation_id=ids[2],
        key=payload.partition_key(), payload=payload)
    assert built == validated and built.model_fields_set == validated.model_fields_set
    assert built.occurred_at.tzinfo is UTC and encode(built) == encode(validated)


def test_new_envelope_still_rejects_naive_times() -> None:
    tick = _raw_tick()
    payload = decode(orjson.dumps(tick)).payload
    with pytest.raises(ValidationError):
        new_envelope(payload, occurred_at=datetime(2023, 1, 1), source="s")
