"""`schemas.export`: the JSON Schemas accept every real encoded message and reject broken ones,
and the AsyncAPI document is valid AsyncAPI 3.0.0 and covers the whole catalog."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel

from schemas.base import Payload
from schemas.catalog import Topic, all_topics
from schemas.envelope import REGISTRY, MessageDecodeError, decode, encode, headers
from schemas.export import (
    JSON_SCHEMA_DIALECT,
    asyncapi_document,
    channel_id,
    export,
    main,
    operation_id,
    schema_file_name,
)
from tests.unit.test_envelope import REGISTERED, by_event_type, envelopes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
ASYNCAPI_SCHEMA = FIXTURES / "asyncapi-3.0.0.schema.json"

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _is_date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _RFC3339.fullmatch(instance):
        return False
    datetime.fromisoformat(instance.upper())  # range checks: month 13, hour 25, ...
    return True


def _format_checker() -> FormatChecker:
    """jsonschema's checkers plus an RFC 3339 ``date-time`` check (jsonschema only checks it when
    the optional rfc3339-validator is installed)."""
    checker = FormatChecker()
    checker.checks("date-time", raises=ValueError)(_is_date_time)
    assert {"uuid", "date-time"} <= set(checker.checkers)
    return checker


FORMATS = _format_checker()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("contracts")
    export(out)
    return out


@pytest.fixture(scope="module")
def message_validators(out_dir: Path) -> dict[str, Validator]:
    """event_type -> validator of its exported JSON Schema, with format checking."""
    validators: dict[str, Validator] = {}
    for cls in REGISTERED:
        schema = json.loads((out_dir / schema_file_name(cls)).read_text())
        Draft202012Validator.check_schema(schema)
        validators[cls.event_type] = Draft202012Validator(schema, format_checker=FORMATS)
    return validators


@pytest.fixture(scope="module")
def asyncapi(out_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out_dir / "asyncapi.json").read_text())
    return document


def _asyncapi_validator() -> Validator:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator: Validator = cls(schema, format_checker=FORMATS)
    return validator


def _embedded(document: dict[str, Any], pointer: str) -> Validator:
    """A draft-07 validator of the schema at `pointer` inside the AsyncAPI `document` (so that
    its ``#/components/schemas/...`` references resolve)."""
    return Draft7Validator(
        {"$ref": pointer, "components": document["components"]}, format_checker=FORMATS
    )


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- files ----------------------------------------------------------------------------------------


def test_export_writes_one_schema_per_payload_type_and_the_asyncapi_document(
    tmp_path: Path,
) -> None:
    written = export(tmp_path / "new")

    names = sorted(p.name for p in written)
    schema_files = [schema_file_name(cls) for cls in REGISTERED]
    expected = sorted([*schema_files, "asyncapi.json", "asyncapi.yaml"])
    assert names == expected
    assert all(p.is_file() and p.parent == tmp_path / "new" for p in written)


def test_yaml_and_json_documents_are_equal(out_dir: Path, asyncapi: dict[str, Any]) -> None:
    assert yaml.safe_load((out_dir / "asyncapi.yaml").read_text()) == asyncapi


def test_main_exports_into_the_given_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / "asyncapi.yaml").is_file()
    assert str(tmp_path / "asyncapi.yaml") in capsys.readouterr().out
    assert main([]) == 2


def test_runs_as_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "schemas.export", str(tmp_path)], check=True, cwd=PROJECT_ROOT
    )
    assert (tmp_path / "asyncapi.json").is_file()


# --- JSON Schemas ---------------------------------------------------------------------------------


@by_event_type
def test_schema_describes_the_whole_message(cls: type[Payload], out_dir: Path) -> None:
    schema = json.loads((out_dir / schema_file_name(cls)).read_text())

    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["$id"].endswith("/" + schema_file_name(cls))
    assert schema["title"] == f"{cls.event_type} v{cls.schema_version}"
    assert cls.event_type in schema["description"]
    props = schema["properties"]
    assert props["event_type"]["const"] == cls.event_type
    assert props["schema_version"]["const"] == cls.schema_version
    assert props["event_id"] == {**props["event_id"], "type": "string", "format": "uuid"}
    assert props["occurred_at"]["format"] == "date-time"
    for nullable in ("correlation_id", "causation_id"):
        assert {"type": "string", "format": "uuid"} in props[nullable]["anyOf"]
        assert {"type": "null"} in props[nullable]["anyOf"]
    assert set(schema["required"]) >= {"event_id", "event_type", "schema_version", "payload"}
    assert all(p.get("description") for p in props.values())


@by_event_type
@settings(deadline=None)
@given(data=st.data())
def test_encoded_messages_validate(
    cls: type[Payload], data: st.DataObject, message_validators: dict[str, Validator]
) -> None:
    message = orjson.loads(encode(data.draw(envelopes(cls))))

    message_validators[cls.event_type].validate(message)


_Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> _Mutation:
    def mutate(message: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = message
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _drop_first_required_payload_field(message: dict[str, Any]) -> None:
    cls = REGISTRY.types[message["event_type"]]
    first = next(n for n, f in cls.model_fields.items() if f.is_required())
    del message["payload"][first]


MUTATIONS: dict[str, _Mutation] = {
    "event_id not a uuid": _set("event_id", "42"),
    "naive occurred_at": _set("occurred_at", "2023-01-15T00:00:00"),
    "occurred_at not a date": _set("occurred_at", "yesterday"),
    "other event_type": _set("event_type", "SomethingElse"),
    "newer schema_version": lambda m: m.update(schema_version=m["schema_version"] + 1),
    "key not a string": _set("key", 5),
    "correlation_id not a uuid": _set("correlation_id", "abc"),
    "missing event_id": lambda m: m.pop("event_id"),
    "payload not an object": _set("payload", []),
    "unknown payload field": _set("payload.unexpected_field", 1),
    "missing payload field": _drop_first_required_payload_field,
}


@by_event_type
@pytest.mark.parametrize("mutation", MUTATIONS.values(), ids=MUTATIONS.keys())
@settings(deadline=None, max_examples=10)
@given(data=st.data())
def test_broken_messages_fail_validation_and_decoding(
    cls: type[Payload],
    mutation: _Mutation,
    data: st.DataObject,
    message_validators: dict[str, Validator],
) -> None:
    message = orjson.loads(encode(data.draw(envelopes(cls))))
    mutation(message)

    assert not message_validators[cls.event_type].is_valid(message)
    with pytest.raises(MessageDecodeError):
        decode(orjson.dumps(message))


def test_wrong_payload_field_type_fails(message_validators: dict[str, Validator]) -> None:
    message: dict[str, Any] = {
        "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "event_type": "PriceTickReceived",
        "schema_version": 1,
        "occurred_at": "2023-01-15T00:00:00Z",
        "source": "gateway.market-data.file",
        "correlation_id": None,
        "causation_id": None,
        "key": "EPEX_AT_DAY_AHEAD_60MIN",
        "payload": {
            "market": "EPEX_AT_DAY_AHEAD_60MIN",
            "bidding_zone": "AT",
            "delivery_start": "2023-01-15T00:00:00Z",
            "delivery_end": "2023-01-15T01:00:00Z",
            "resolution": "PT60M",
            "price_eur_mwh": 101.25,
            "volume_mwh": None,
            "data_source": "file",
        },
    }
    validator = message_validators["PriceTickReceived"]
    validator.validate(message)
    decode(orjson.dumps(message))

    message["payload"]["price_eur_mwh"] = "101.25"
    errors = list(validator.iter_errors(message))
    assert [list(e.absolute_path) for e in errors] == [["payload", "price_eur_mwh"]]


# --- AsyncAPI -------------------------------------------------------------------------------------


def test_asyncapi_document_is_valid(out_dir: Path, asyncapi: dict[str, Any]) -> None:
    validator = _asyncapi_validator()

    validator.validate(asyncapi)
    validator.validate(yaml.safe_load((out_dir / "asyncapi.yaml").read_text()))


def test_asyncapi_validation_catches_mistakes(asyncapi: dict[str, Any]) -> None:
    """The official schema is strict enough to notice a broken document."""
    validator = _asyncapi_validator()
    broken = json.loads(json.dumps(asyncapi))
    first_op = next(iter(broken["operations"].values()))
    first_op["action"] = "consume"
    next(iter(broken["channels"].values()))["bindings"]["kafka"]["partitions"] = 0
    next(iter(broken["components"]["messages"].values()))["payload"]["type"] = "record"

    assert len(list(validator.iter_errors(broken))) == 3


def test_every_reference_resolves(asyncapi: dict[str, Any]) -> None:
    refs = set(_refs(asyncapi))
    assert refs
    for ref in refs:
        assert _resolve(asyncapi, ref) is not None, ref


def test_every_topic_is_a_channel_with_its_kafka_configuration(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["servers"]["kafka"]["protocol"] == "kafka"
    assert "bootstrap" in asyncapi["servers"]["kafka"]["variables"]
    assert len(asyncapi["channels"]) == len(all_topics())
    for topic in all_topics():
        channel = asyncapi["channels"][channel_id(topic)]
        assert channel["address"] == topic.name
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == topic.name
        assert kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"]["cleanup.policy"] == [topic.cleanup_policy]
        assert kafka["topicConfiguration"]["retention.ms"] == topic.retention_ms
        assert topic.key in channel["description"]
        assert set(channel["messages"]) == {cls.event_type for cls in topic.payloads}

        operation = asyncapi["operations"][operation_id(topic)]
        assert operation["action"] == "receive"
        assert _resolve(asyncapi, operation["channel"]["$ref"]) is channel
        assert {_resolve(asyncapi, m["$ref"])["$ref"] for m in operation["messages"]} == {
            f"#/components/messages/{cls.event_type}" for cls in topic.payloads
        }


@by_event_type
def test_every_payload_type_is_a_message(cls: type[Payload], asyncapi: dict[str, Any]) -> None:
    message = asyncapi["components"]["messages"][cls.event_type]

    assert message["name"] == cls.event_type
    assert message["contentType"] == "application/json"
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    assert message["headers"]["properties"]["event_type"]["const"] == cls.event_type
    assert message["headers"]["properties"]["schema_version"]["const"] == str(cls.schema_version)
    assert message["payload"]["properties"]["event_type"]["const"] == cls.event_type


@by_event_type
@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_encoded_messages_and_headers_match_the_asyncapi_message(
    cls: type[Payload], data: st.DataObject, asyncapi: dict[str, Any]
) -> None:
    envelope = data.draw(envelopes(cls))
    pointer = f"#/components/messages/{cls.event_type}"

    _embedded(asyncapi, pointer + "/payload").validate(orjson.loads(encode(envelope)))
    _embedded(asyncapi, pointer + "/headers").validate(
        {name: value.decode() for name, value in headers(envelope)}
    )


# --- generic over the catalog ---------------------------------------------------------------------


class _Leg(BaseModel):
    """A nested model, to check that nested schemas land in components.schemas."""

    price: Decimal
    quantity_mwh: float


class _SpreadQuoted(Payload):
    """Test-only event on a test-only compacted topic."""

    event_type = "TestSpreadQuoted"
    schema_version = 3
    market: str
    legs: list[_Leg]

    def partition_key(self) -> str:
        return self.market


def test_new_topics_and_payload_types_appear_automatically() -> None:
    extra = Topic(
        name="test.spreads.v1",
        key="market",
        partitions=6,
        payloads=(_SpreadQuoted,),
        description="Test-only spreads.",
        cleanup_policy="compact",
        extra_config={"min.compaction.lag.ms": "60000"},
    )
    topics = (*all_topics(), extra)

    document = asyncapi_document(topics)

    _asyncapi_validator().validate(document)
    channel = document["channels"]["testSpreadsV1"]
    assert channel["address"] == "test.spreads.v1"
    assert channel["bindings"]["kafka"]["topicConfiguration"] == {
        "cleanup.policy": ["compact"],
        "retention.ms": -1,
        "min.compaction.lag.ms": 60000,
    }
    assert document["operations"]["receiveTestSpreadsV1"]["action"] == "receive"
    message = document["components"]["messages"]["TestSpreadQuoted"]
    assert message["payload"]["properties"]["schema_version"]["const"] == 3
    assert {"_Leg", "_SpreadQuoted"} <= set(document["components"]["schemas"])
    for ref in set(_refs(document)):
        _resolve(document, ref)
