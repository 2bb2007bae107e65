"""Output encoding of the stream processors (trading, indicators): the wire format of
`schemas.envelope`, without building and validating an `Envelope` model per output.

`follow_up(parent, payload, source)` returns the ``(key, value, headers)`` of
``caused_by(parent, payload, source=source)`` (value byte-identical to ``schemas.envelope.encode``
of that envelope, new random UUID4 event id) by one ``orjson.dumps`` of the payload's field dict:
for payloads whose fields are str, None, bool, UUID, aware datetimes, Decimal and str enums, which
is all of `schemas.trading` and `schemas.market`; `tests/unit/test_follow_up_codec.py` checks
it against the reference.

(Decoding stays `schemas.envelope.decode`: pydantic-core validates a SubmitOrder envelope in
~9 us; a field-by-field Python validator of the same strictness measured ~12 us.)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from os import register_at_fork, urandom
from typing import Any

import orjson

from schemas.base import Payload
from schemas.envelope import Envelope

Headers = list[tuple[str, bytes]]
Record = tuple[bytes, bytes, Headers]
"""(Kafka key, value, headers) of one output message."""

# -- encoding ----------------------------------------------------------------------------------

def _default(value: Any) -> str:
    if type(value) is Decimal:
        return str(value)
    raise TypeError(f"not serialisable: {type(value).__name__}")


_OPTIONS = orjson.OPT_UTC_Z
_dumps = orjson.dumps
_HEADERS: dict[type[Payload], Headers] = {}
_HEX_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


_RANDOM_HEX: list[str] = []
register_at_fork(after_in_child=_RANDOM_HEX.clear)  # a forked child must not reuse them


def new_event_id() -> str:
    """A random UUID4 as its canonical string (what ``str(uuid.uuid4())`` gives); the
    ``os.urandom`` bytes are drawn 256 ids at a time (one system call)."""
    if not _RANDOM_HEX:
        block = urandom(16 * 256).hex()
        _RANDOM_HEX.extend(block[i:i + 32] for i in range(0, len(block), 32))
    h = _RANDOM_HEX.pop()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_HEX_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def headers_of(cls: type[Payload]) -> Headers:
    """`schemas.envelope.headers` of an envelope of `cls` (shared: do not mutate)."""
    found = _HEADERS.get(cls)
    if found is None:
        found = _HEADERS[cls] = [("event_type", cls.event_type.encode()),
                                 ("schema_version", str(cls.schema_version).encode())]
    return found


class Parent:
    """The envelope that caused the outputs: what `caused_by` takes from it, as JSON values."""

    __slots__ = ("correlation_id", "event_id", "occurred_at")

    def __init__(self, envelope: Envelope[Any]) -> None:
        self.event_id = str(envelope.event_id)
        correlation = envelope.correlation_id
        self.correlation_id = self.event_id if correlation is None else str(correlation)
        self.occurred_at = envelope.occurred_at


def follow_up(parent: Parent, payload: Payload, source: str,
              occurred_at: datetime | None = None, key: str | None = None) -> Record:
    """``(key, encode(env), headers(env))`` of ``env = caused_by(parent envelope, payload,
    source=source, occurred_at=occurred_at)`` (with `key`: of that envelope keyed `key`)."""
    cls = type(payload)
    key = payload.partition_key() if key is None else key
    value = _dumps({
        "event_id": new_event_id(), "event_type": cls.event_type,
        "schema_version": cls.schema_version,
        "occurred_at": parent.occurred_at if occurred_at is None else occurred_at,
        "source": source, "correlation_id": parent.correlation_id,
        "causation_id": parent.event_id, "key": key, "payload": payload.__dict__,
    }, default=_default, option=_OPTIONS)
    return key.encode(), value, headers_of(cls)


