"""MQTT payload parsing, register-map profiles (default and SunSpec) and API key hashing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.telemetry.registers import (
    ProfileError,
    decode,
    encode_value,
    profile_from_dict,
    read_blocks,
    resolve,
    setpoint_mw,
    setpoint_value,
)
from gateways.mqtt.parse import ParseError, TopicConfig, parse
from infra.api_keys import KeyRing, hash_key, sha256_entry
from infra.modbus import load_profile

NOW = datetime(2025, 1, 26, tzinfo=UTC)
CONFIG = TopicConfig(prefix="bess", legacy={"bess/soc": "soc_pct", "bess/power": "active_power_mw",
                                            "bess/temperature": "temperature_c"},
                     default_site="site-1", sensor_sites={"esp32-7": "site-2"})


def test_predecessor_topics() -> None:
    r = parse(CONFIG, "bess/soc", b'{"value": 75.5, "timestamp": "2025-01-25T20:30:00Z", '
                                  b'"unit": "%"}', NOW)
    assert (r.site, r.device_id, r.source, r.soc_pct) == ("site-1", "site-1-bess", "mqtt", 75.5)
    assert r.device_time == datetime(2025, 1, 25, 20, 30, tzinfo=UTC) and r.received_at == NOW
    assert parse(CONFIG, "bess/power", b'{"value": 2500, "unit": "kW"}', NOW).active_power_mw == 2.5
    t = parse(CONFIG, "bess/temperature", '{"value": 28.3, "unit": "°C"}'.encode(), NOW)
    assert t.temperature_c == 28.3 and t.device_time == NOW


def test_site_telemetry_and_discovery() -> None:
    r = parse(CONFIG, "bess/wien/telemetry", json.dumps({
        "device_id": "pcs-1", "soc_percent": 60, "active_power_mw": -1500,
        "units": {"active_power_mw": "kW"}, "frequency_hz": 49.98}).encode(), NOW)
    assert (r.site, r.device_id, r.soc_pct, r.active_power_mw, r.frequency_hz) == \
        ("wien", "pcs-1", 60.0, -1.5, 49.98)
    s = parse(CONFIG, "bess/sensors/esp32-7/temperature", b'{"value": 31.5}', NOW)
    assert (s.site, s.device_id, s.temperature_c) == ("site-2", "esp32-7", 31.5)
    s = parse(CONFIG, "bess/sensors/esp32-9/temperature", b'{"value": 31.5, "site": "x"}', NOW)
    assert s.site == "x"


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("bess/soc", b"{not json", "not valid JSON"),
    ("bess/soc", b'{"timestamp": "2025-01-25T20:30:00Z"}', "misses value"),
    ("bess/soc", b'{"value": "high"}', "must be a number"),
    ("bess/soc", b'{"value": 50, "timestamp": "yesterday"}', "not ISO 8601"),
    ("bess/soc", b'{"value": 50, "timestamp": "2025-01-25T20:30:00"}', "no UTC offset"),
    ("bess/power", b'{"value": 5, "unit": "degC"}', "does not fit active_power_mw"),
    ("bess/soc", b'{"value": 130}', "invalid reading"),
    ("bess/sensors/x/humidity", b'{"value": 50}', "unknown sensor type"),
    ("bess/s1/telemetry", b'{"colour": 1}', "unknown field(s) colour"),
    ("bess/s1/telemetry", b"[1, 2]", "must be a JSON object"),
])
def test_malformed_messages_say_why(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(CONFIG, topic, payload, NOW)


def test_default_profile_is_the_predecessor_map() -> None:
    p = load_profile("default")
    assert read_blocks(p) == [(0, 3), (10, 1)] or read_blocks(p) == [(0, 11)]
    assert decode(p, {0: 7500, 1: 2500, 2: 283}) == {
        "soc_pct": 75.0, "active_power_mw": 2.5, "temperature_c": 28.3}
    assert decode(p, {0: 0, 1: 0x10000 - 2500, 2: 0x10000 - 55})["active_power_mw"] == -2.5
    assert setpoint_value(p, -1.5) == -1500.0
    assert encode_value(p.setpoint, -1500.0) == [0x10000 - 1500]  # type: ignore[arg-type]
    assert setpoint_mw(p, -1500.0) == -1.5


def test_sunspec_profile_matches_the_sunspec_models() -> None:
    sunspec2 = pytest.importorskip("sunspec2")
    models = Path(sunspec2.__file__).parent / "models" / "json"
    p = load_profile("sunspec")
    for point in [*p.all_points(), p.setpoint]:
        assert point is not None
        model = json.loads((models / f"model_{point.model}.json").read_text())
        offsets, offset = {}, 0
        for q in model["group"]["points"]:
            offsets[q["name"]] = (offset, q)
            offset += q["size"]
        by_offset = {o: q for o, q in offsets.values()}
        q = by_offset[point.offset]
        assert q["type"] == point.type, point
        assert offsets[q["sf"]][0] == point.sf_offset, point
    assert dict(p.models) == {1: 66, 103: 50, 124: 24}
    r = resolve(p, {1: 40002, 103: 40070, 124: 40122})
    regs = {a: 0 for a in range(40000, 40150)}
    regs.update({40070 + 14: 25000, 40070 + 15: 2, 40122 + 8: 7512, 40122 + 22: 0x10000 - 2,
                 40070 + 33: 283, 40070 + 37: 0x10000 - 1, 40070 + 16: 0xFFFF})
    values = decode(r, regs)
    assert values["active_power_mw"] == 2.5 and values["soc_pct"] == 75.12
    assert values["temperature_c"] == 28.3 and "frequency_hz" not in values  # not implemented
    with pytest.raises(ProfileError, match="no SunSpec model 124"):
        resolve(p, {1: 40002, 103: 40070})


def test_bad_profiles_are_refused() -> None:
    with pytest.raises(ProfileError, match="needs name and points"):
        profile_from_dict({"points": {}})
    with pytest.raises(ProfileError, match="unknown type"):
        profile_from_dict({"name": "x", "points": {"soc_pct": {"address": 0, "type": "int8"}}})
    with pytest.raises(ProfileError, match="no Modbus profile"):
        load_profile("nope")


def test_api_keys_are_kept_hashed() -> None:
    entry = hash_key("bess_telemetry_key")
    assert "bess_telemetry_key" not in entry and entry.startswith("scrypt:")
    ring = KeyRing([entry, sha256_entry("other")])
    assert ring.verify("bess_telemetry_key") and ring.verify("other")
    assert not ring.verify("wrong") and not ring.verify(None) and not ring.verify("")
    assert not KeyRing([""])
