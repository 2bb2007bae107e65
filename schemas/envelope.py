"""The envelope every message on every topic travels in, and its orjson codec.

Wire format (JSON object, UTF-8)::

    {"event_id": "<uuid>", "event_type": "PriceTickReceived", "schema_version": 1,
     "occurred_at": "2023-01-15T00:00:00Z", "source": "gateway.market-data.file",
     "correlation_id": "<uuid>|null", "causation_id": "<uuid>|null",
     "key": "EPEX_AT_DAY_AHEAD_60MIN",
     "payload": {...}}

The Kafka record key is `key` encoded as UTF-8; the headers `event_type` and `schema_version`
repeat the envelope's so that consumers can route without parsing the value.

Errors: `decode` raises `MessageDecodeError` (a `ValueError`) with a human-readable reason for
bytes that are not JSON, not an envelope, of an unknown event type or with an invalid payload.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, Generic, TypeVar, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.base import Payload, UtcDatetime

P = TypeVar("P", bound=Payload)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class MessageDecodeError(ValueError):
    """A message could not be decoded; `reason` says why (it goes to the dead-letter topic)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Envelope(BaseModel, Generic[P]):
    """Metadata of one message plus its typed payload."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(
        description="Unique id of this message; consumers deduplicate on it."
    )
    event_type: str = Field(description="Payload type name, e.g. PriceTickReceived.")
    schema_version: int = Field(ge=1, description="Version of the payload schema.")
    occurred_at: UtcDatetime = Field(description="When the fact happened (event time), UTC.")
    source: str = Field(description="Producer of the message, e.g. gateway.market-data.entsoe.")
    correlation_id: uuid.UUID | None = Field(
        default=None, description="Id shared by all messages of one business flow."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="event_id of the message that caused this one."
    )
    key: str = Field(description="Partition key (also the Kafka record key).")
    payload: P


class _Registry:
    """Maps event_type to its payload class and upcasters (old version -> next version)."""

    def __init__(self) -> None:
        self.types: dict[str, type[Payload]] = {}
        self.upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[Payload]) -> type[Payload]:
        existing = self.types.get(cls.event_type)
        if existing is not None and existing is not cls:
            raise ValueError(f"event type {cls.event_type} registered twice")
        self.types[cls.event_type] = cls
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def wrap(fn: Upcaster) -> Upcaster:
            self.upcasters[(event_type, from_version)] = fn
            return fn

        return wrap


REGISTRY = _Registry()


def register(cls: type[P]) -> type[P]:
    """Class decorator: make a payload type decodable."""
    REGISTRY.register(cls)
    return cls


@cache
def _envelope_model(cls: type[Payload]) -> type[Envelope[Any]]:
    """`Envelope[cls]`, held strongly: pydantic caches parametrised generics only weakly, and
    rebuilding one costs milliseconds."""
    return Envelope[cls]  # type: ignore[valid-type]


_ENVELOPE_FIELDS_SET = frozenset(Envelope.model_fields)

_new_object = object.__new__
_set_attribute = object.__setattr__


def _construct(model: type[Any], values: dict[str, Any], fields_set: frozenset[str]) -> Any:
    """An instance of the pydantic `model` with `values` (all fields, in field order, already
    of the validated types), built as pydantic-core builds a validated one (no ``__init__``)."""
    instance = _new_object(model)
    _set_attribute(instance, "__dict__", values)
    _set_attribute(instance, "__pydantic_fields_set__", set(fields_set))
    _set_attribute(instance, "__pydantic_extra__", None)
    _set_attribute(instance, "__pydantic_private__", None)
    return instance


def new_envelope(
    payload: P,
    *,
    occurred_at: datetime,
    source: str,
    event_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    key: str | None = None,
) -> Envelope[P]:
    """Wrap `payload`; the key defaults to `payload.partition_key()`, the id to a random UUID4."""
    # Parametrise with the payload's runtime class so pydantic validates/serialises it exactly.
    model = cast("type[Envelope[P]]", _envelope_model(type(payload)))
    if key is None:
        key = payload.partition_key()
    if event_id is None:
        event_id = uuid.uuid4()
    # Fast path: arguments of exactly the types validation would produce (a UTC datetime is
    # returned as is by `_to_utc`, a payload instance is not revalidated): build the instance
    # directly, as pydantic would. Anything else is validated (and rejected) by pydantic.
    if (type(event_id) is uuid.UUID and type(occurred_at) is datetime
            and occurred_at.tzinfo is UTC and type(source) is str and type(key) is str
            and (correlation_id is None or type(correlation_id) is uuid.UUID)
            and (causation_id is None or type(causation_id) is uuid.UUID)
            and type(payload.event_type) is str and type(payload.schema_version) is int
            and payload.schema_version >= 1 and isinstance(payload, Payload)):
        return cast("Envelope[P]", _construct(model, {
            "event_id": event_id, "event_type": payload.event_type,
            "schema_version": payload.schema_version, "occurred_at": occurred_at,
            "source": source, "correlation_id": correlation_id, "causation_id": causation_id,
            "key": key, "payload": payload}, _ENVELOPE_FIELDS_SET))
    return model(
        event_id=event_id,
        event_type=payload.event_type,
        schema_version=payload.schema_version,
        occurred_at=occurred_at,
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        key=key,
        payload=payload,
    )


def caused_by(
    parent: Envelope[Any], payload: P, *, source: str, occurred_at: datetime | None = None
) -> Envelope[P]:
    """A follow-up message: same correlation id, causation = the parent's event id."""
    return new_envelope(
        payload,
        occurred_at=occurred_at or parent.occurred_at,
        source=source,
        correlation_id=parent.correlation_id or parent.event_id,
        causation_id=parent.event_id,
    )


_DIGITS_ONLY = bytes(0x30 if 0x30 <= c <= 0x39 else 0x2E for c in range(256))
"""A `bytes.translate` table: every digit becomes ``0``, everything else ``.``."""

_LONG_DIGIT_RUN = b"0" * 19
"""Integers beyond 64 bits have at least 20 digits; floats are written with at most 17."""


def encode(envelope: Envelope[Any]) -> bytes:
    """Serialise an envelope to JSON bytes.

    The bytes are those of ``orjson.dumps(envelope.model_dump(mode="json"))`` (the reference,
    tested to be byte-identical), produced by pydantic-core in one call. orjson refuses integers
    beyond 64 bits, which pydantic-core would write: output with a run of 19+ digits (in a
    number or a string) is therefore serialised by the reference, which raises as before.
    """
    data = envelope.__pydantic_serializer__.to_json(envelope)
    if _LONG_DIGIT_RUN in data.translate(_DIGITS_ONLY):
        return orjson.dumps(envelope.model_dump(mode="json"))
    return data


def headers(envelope: Envelope[Any]) -> list[tuple[str, bytes]]:
    """Kafka record headers for `envelope`."""
    return [
        ("event_type", envelope.event_type.encode()),
        ("schema_version", str(envelope.schema_version).encode()),
    ]


_HEADER_FIELDS = ("event_id", "event_type", "schema_version", "occurred_at", "source", "key")
_REQUIRED = frozenset((*_HEADER_FIELDS, "payload"))


def decode(data: bytes | str) -> Envelope[Any]:
    """Parse bytes into an `Envelope` with a typed, upcast payload.

    Raises:
        MessageDecodeError: not JSON, not an object, missing envelope fields, unknown event type,
            a schema version newer than this code knows, or a payload that fails validation.
    """
    try:
        raw = orjson.loads(data)  # the judge of what is JSON (pydantic-core also takes NaN)
    except orjson.JSONDecodeError as exc:
        raise MessageDecodeError(f"not valid JSON: {exc}") from None
    # Fast path, the common case: a well-formed envelope of the current version. Exactly the
    # conditions under which `_decode_checked` reaches its own `model_validate_json(data)`
    # (``type(...) is`` excludes subclasses such as bool, which take the checked path).
    if type(raw) is dict and raw.keys() >= _REQUIRED and type(raw["payload"]) is dict:
        event_type, version = raw["event_type"], raw["schema_version"]
        cls = REGISTRY.types.get(event_type) if type(event_type) is str else None
        if cls is not None and type(version) is int and version == cls.schema_version:
            try:
                return _envelope_model(cls).__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
            except ValidationError as exc:
                raise _invalid(event_type, exc) from None
    return _decode_checked(data, raw)


def _invalid(event_type: str, exc: ValidationError) -> MessageDecodeError:
    errors = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
    )
    return MessageDecodeError(f"invalid {event_type}: {errors}")


def _decode_checked(data: bytes | str, raw: Any) -> Envelope[Any]:
    """`decode` for everything but the fast path: says what is wrong, upcasts old versions."""
    if not isinstance(raw, dict):
        raise MessageDecodeError(f"envelope must be a JSON object, got {type(raw).__name__}")
    missing = [f for f in (*_HEADER_FIELDS, "payload") if f not in raw]
    if missing:
        raise MessageDecodeError(f"envelope misses field(s): {', '.join(missing)}")
    event_type = raw["event_type"]
    cls = REGISTRY.types.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        raise MessageDecodeError(f"unknown event_type {event_type!r}")
    version = raw["schema_version"]
    if not isinstance(version, int) or version < 1:
        raise MessageDecodeError(f"schema_version must be a positive integer, got {version!r}")
    if version > cls.schema_version:
        raise MessageDecodeError(
            f"{event_type} schema_version {version} is newer than supported {cls.schema_version}"
        )
    payload = raw["payload"]
    if not isinstance(payload, dict):
        raise MessageDecodeError("payload must be a JSON object")
    model = _envelope_model(cls)
    try:
        if version == cls.schema_version:  # validate the bytes in pydantic-core
            return model.model_validate_json(data)
        while version < cls.schema_version:
            upcast = REGISTRY.upcasters.get((event_type, version))
            if upcast is None:
                raise MessageDecodeError(f"no upcaster for {event_type} v{version}")
            payload = upcast(payload)
            version += 1
        return model.model_validate({**raw, "payload": payload, "schema_version": version})
    except ValidationError as exc:
        raise _invalid(event_type, exc) from None
