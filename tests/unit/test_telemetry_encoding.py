"""The gateway's fast paths are equivalent to the pydantic ones: `encode_reading` writes the
bytes of `encode(new_envelope(...))`, `reading_event_id_str` is a UUID5 (the same for the same
reading, other for another), and `parse` keeps its reasons for bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.mqtt.parse import ParseError, TopicConfig, parse
from gateways.telemetry.encoding import (
    HEADERS,
    NAMESPACE,
    encode_reading,
    reading_event_id,
    reading_event_id_str,
)
from schemas.envelope import decode, encode, headers, new_envelope
from schemas.telemetry import TelemetryReceived
from tests.unit.test_envelope import payloads

CONFIG = TopicConfig(prefix="bess", legacy={"bess/soc": "soc_pct"}, default_site="site-1",
                     sensor_sites={})


@settings(max_examples=300, deadline=None)
@given(reading=payloads(TelemetryReceived), source=st.text())
def test_encode_reading_writes_the_envelope_codec_bytes(reading: TelemetryReceived,
                                                        source: str) -> None:
    event_id = reading_event_id_str(reading, reading.quantities())
    name = orjson.dumps([reading.site, reading.device_id, reading.device_time,
                         sorted(reading.quantities().items())]).decode()
    assert event_id == str(reading_event_id(reading)) == str(uuid.uuid5(NAMESPACE, name))
    envelope = new_envelope(reading, occurred_at=reading.device_time, source=source,
                            event_id=uuid.UUID(event_id))
    fast = encode_reading(reading, source, event_id)
    assert fast == encode(envelope)
    assert decode(fast) == envelope
    assert headers(envelope) == HEADERS


def test_parse_fast_path_reads_what_the_schema_reads() -> None:
    now = datetime(2025, 1, 26, tzinfo=UTC)
    r = parse(CONFIG, "bess/s1/telemetry", b'{"soc_pct": 50, "active_power_mw": 1.5, '
                                          b'"units": {"active_power_mw": "kW"}, '
                                          b'"timestamp": 1737837000.5}', now)
    assert r == TelemetryReceived(site="s1", device_id="s1-mqtt", source="mqtt",
                                  device_time=datetime.fromtimestamp(1737837000.5, UTC),
                                  received_at=now, soc_pct=50.0, active_power_mw=0.0015)
    assert isinstance(r.soc_pct, float)


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"soc_pct": 1e400}', "not valid JSON"),  # orjson refuses infinity
    (b'{"soc_pct": true}', "must be a number"),
    (b'{"soc_pct": 5, "units": {"soc_pct": 3}}', "unit 3 is not a string"),
    (b'{"soc_pct": -1}', "invalid reading"),
    (b'{"device_id": "x"}', "no quantities"),
    (b'{"soc_pct": 5, "units": [1]}', "units must be an object"),
])
def test_parse_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(CONFIG, "bess/s1/telemetry", payload, datetime(2025, 1, 26, tzinfo=UTC))


def test_topics_outside_the_prefix_are_not_telemetry() -> None:
    for topic in ("bessx/s1/telemetry", "bess", "other/bess/s1/telemetry"):
        with pytest.raises(ParseError, match="not a telemetry topic"):
            parse(CONFIG, topic, b'{"soc_pct": 5}', datetime(2025, 1, 26, tzinfo=UTC))


def test_event_ids_tell_readings_apart() -> None:
    t = datetime(2025, 1, 26, tzinfo=UTC)
    a = TelemetryReceived(site="s", device_id="d", source="mqtt", device_time=t, received_at=t,
                          soc_pct=50.0, temperature_c=20.0)
    same = a.model_copy(update={"received_at": datetime(2025, 1, 27, tzinfo=UTC),
                                "source": "modbus"})
    assert reading_event_id(a) == reading_event_id(same)  # receive time and route do not count
    for change in ({"soc_pct": 50.000001}, {"device_id": "e"}, {"site": "t"},
                   {"device_time": datetime(2025, 1, 26, 0, 0, 1, tzinfo=UTC)},
                   {"temperature_c": None}):
        assert reading_event_id(a) != reading_event_id(a.model_copy(update=change))


def test_no_alias_is_a_reserved_field() -> None:
    """`parse` looks a field up in ALIASES first and only then among the reserved ones."""
    from gateways.mqtt.parse import _NOT_QUANTITIES, ALIASES

    assert not set(ALIASES) & _NOT_QUANTITIES
