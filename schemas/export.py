"""Export the contracts as JSON Schema (draft 2020-12) files and an AsyncAPI 3.0.0 document.

`export(out_dir)` writes, for every registered payload type, the schema of the *whole* message as
it appears on the wire (the `Envelope` with ``payload`` of that type and constant ``event_type``
and ``schema_version``) as ``<EventType>.v<version>.schema.json``, plus ``asyncapi.yaml`` and
``asyncapi.json`` describing every topic of `schemas.catalog.all_topics` as a channel on a Kafka
server. Everything is derived from the catalog and the registry, so new topics and payload types
appear without changes here.

Run as ``python -m schemas.export OUT_DIR``.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas.base import Payload
from schemas.catalog import DAY_MS, Topic, all_topics
from schemas.envelope import REGISTRY, Envelope

JsonDict = dict[str, Any]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_BASE_URI = "https://bess.example.com/schemas/"
"""Base of the schemas' ``$id``; a placeholder until the schemas are published somewhere."""
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_BOOTSTRAP = "localhost:9092"
CONTENT_TYPE = "application/json"
SERVER_ID = "kafka"

_WIRE_NOTE = (
    "Wire format: this JSON object, UTF-8 encoded, is the Kafka record value. The record key is "
    "`key` (UTF-8) and the record headers `event_type` and `schema_version` repeat the "
    "envelope's. Optional envelope fields are written as null when absent."
)


def schema_file_name(cls: type[Payload]) -> str:
    """File name of the JSON Schema of `cls`, e.g. ``PriceTickReceived.v1.schema.json``."""
    return f"{cls.event_type}.v{cls.schema_version}.schema.json"


def payload_types(topics: Iterable[Topic] | None = None) -> list[type[Payload]]:
    """Every payload type to export: those on the topics first (catalog order), then any other
    registered type, each once."""
    seen: dict[str, type[Payload]] = {}
    for topic in all_topics() if topics is None else topics:
        for cls in topic.payloads:
            seen.setdefault(cls.event_type, cls)
    for event_type, cls in REGISTRY.types.items():
        seen.setdefault(event_type, cls)
    return list(seen.values())


def envelope_model(cls: type[Payload]) -> type[BaseModel]:
    """``Envelope[cls]``: the model of a whole message carrying a `cls` payload."""
    model: type[BaseModel] = Envelope[cls]  # type: ignore[valid-type]
    return model


def _doc(cls: type[Any]) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


def _summary(cls: type[Any]) -> str:
    return _doc(cls).split("\n\n", 1)[0].replace("\n", " ")


def _topics_carrying(cls: type[Payload], topics: Sequence[Topic]) -> list[Topic]:
    return [t for t in topics if cls in t.payloads]


def _key_description(cls: type[Payload], topics: Sequence[Topic]) -> str:
    keys = sorted({t.key for t in _topics_carrying(cls, topics)})
    what = " / ".join(keys) if keys else "see the payload's partition key"
    return f"Partition key of {cls.event_type}: {what}. Also the Kafka record key (UTF-8)."


def _finish_envelope_schema(
    schema: JsonDict, cls: type[Payload], payload_ref: str, topics: Sequence[Topic]
) -> JsonDict:
    """Turn pydantic's schema of ``Envelope[cls]`` into the schema of one message type."""
    props: JsonDict = schema["properties"]
    props["event_type"] = {
        "type": "string",
        "const": cls.event_type,
        "title": "Event Type",
        "description": f"Payload type name; always {cls.event_type} for this message.",
    }
    props["schema_version"] = {
        "type": "integer",
        "const": cls.schema_version,
        "title": "Schema Version",
        "description": f"Version of the {cls.event_type} payload schema.",
    }
    props["key"] = {**props["key"], "description": _key_description(cls, topics)}
    props["payload"] = {"$ref": payload_ref, "description": f"The {cls.event_type} payload."}
    carried_on = ", ".join(t.name for t in _topics_carrying(cls, topics))
    schema["title"] = f"{cls.event_type} v{cls.schema_version}"
    schema["description"] = "\n\n".join(
        part
        for part in (
            f"A {cls.kind} message: the envelope with a {cls.event_type} payload.",
            _doc(cls),
            f"Topics: {carried_on}." if carried_on else "",
            _WIRE_NOTE,
        )
        if part
    )
    return schema


def message_json_schema(
    cls: type[Payload], *, base_uri: str = DEFAULT_BASE_URI, topics: Sequence[Topic] | None = None
) -> JsonDict:
    """Standalone JSON Schema (draft 2020-12) of a whole message carrying a `cls` payload."""
    topics = all_topics() if topics is None else topics
    schema = envelope_model(cls).model_json_schema(mode="serialization")
    payload_ref = schema["properties"]["payload"]["$ref"]
    body = _finish_envelope_schema(schema, cls, payload_ref, topics)
    head = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": base_uri + schema_file_name(cls),
        "title": body.pop("title"),
        "description": body.pop("description"),
    }
    return {**head, **body}


# --- AsyncAPI -----------------------------------------------------------------------------------


def channel_id(topic: Topic) -> str:
    """AsyncAPI channel id of a topic, e.g. ``market.price-ticks.v1`` -> ``marketPriceTicksV1``."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", topic.name) if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _duration(ms: int) -> str:
    if ms < 0:
        return "unlimited"
    if ms % DAY_MS == 0:
        days = ms // DAY_MS
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{ms} ms"


def _config_value(value: str) -> int | bool | str:
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value


def _topic_configuration(topic: Topic) -> JsonDict:
    config: JsonDict = {}
    for name, value in topic.config().items():
        if name == "cleanup.policy":
            config[name] = [p.strip() for p in value.split(",") if p.strip()]
        else:
            config[name] = _config_value(value)
    return config


def _channel(topic: Topic) -> JsonDict:
    retention = _duration(topic.retention_ms)
    description = (
        f"{topic.description}\n\n"
        f"Key: {topic.key}. Partitions: {topic.partitions} (records with the same key keep "
        f"their order). Cleanup policy: {topic.cleanup_policy}; retention: {retention}."
    )
    return {
        "address": topic.name,
        "title": topic.name,
        "description": description,
        "servers": [{"$ref": f"#/servers/{SERVER_ID}"}],
        "messages": {
            cls.event_type: {"$ref": f"#/components/messages/{cls.event_type}"}
            for cls in topic.payloads
        },
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": _topic_configuration(topic),
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def operation_id(topic: Topic) -> str:
    """AsyncAPI id of the consume operation of a topic, e.g. ``receiveMarketPriceTicksV1``."""
    cid = channel_id(topic)
    return f"receive{cid[:1].upper()}{cid[1:]}"


def _operation(topic: Topic) -> JsonDict:
    cid = channel_id(topic)
    if topic.name.endswith(".dlq"):
        how = "Operators inspect and replay dead letters; they are never dropped."
    else:
        how = (
            "Consumers use their processor name as consumer group, commit offsets only after "
            "their effects are durable and deduplicate on `event_id`. Messages they cannot "
            f"process go to {topic.dlq}."
        )
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{cid}"},
        "title": f"Consume {topic.name}",
        "summary": f"Consume {topic.name}: {topic.description}",
        "description": how,
        "messages": [
            {"$ref": f"#/channels/{cid}/messages/{cls.event_type}"} for cls in topic.payloads
        ],
        "bindings": {
            "kafka": {
                "groupId": {"type": "string", "description": "The processor name."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _headers_schema(cls: type[Payload]) -> JsonDict:
    return {
        "type": "object",
        "description": "Kafka record headers (UTF-8 values) for routing without parsing.",
        "properties": {
            "event_type": {
                "type": "string",
                "const": cls.event_type,
                "description": "Same as the envelope's event_type.",
            },
            "schema_version": {
                "type": "string",
                "const": str(cls.schema_version),
                "description": "Same as the envelope's schema_version, as decimal text.",
            },
        },
        "required": ["event_type", "schema_version"],
    }


def _message(cls: type[Payload], payload_schema: JsonDict, topics: Sequence[Topic]) -> JsonDict:
    return {
        "name": cls.event_type,
        "title": f"{cls.event_type} v{cls.schema_version}",
        "summary": _summary(cls),
        "description": _doc(cls),
        "contentType": CONTENT_TYPE,
        "headers": _headers_schema(cls),
        "payload": payload_schema,
        "correlationId": {
            "description": "Shared by all messages of one business flow.",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": _key_description(cls, topics)},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _project_version() -> str:
    try:
        return metadata.version("bess")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def asyncapi_document(topics: Sequence[Topic] | None = None) -> JsonDict:
    """The AsyncAPI 3.0.0 document of every topic, as a JSON-compatible dict.

    Payload and nested models live in ``components.schemas``; each message's payload is the
    envelope schema of its type with ``$ref`` into them.
    """
    topics = all_topics() if topics is None else tuple(topics)
    types = payload_types(topics)
    mode: JsonSchemaMode = "serialization"
    envelopes = [(envelope_model(cls), mode) for cls in types]
    refs, defs = models_json_schema(envelopes, ref_template="#/components/schemas/{model}")
    component_schemas: JsonDict = dict(defs.get("$defs", {}))
    messages: JsonDict = {}
    for cls, (model, _) in zip(types, envelopes, strict=True):
        ref = refs[(model, mode)]["$ref"]
        name = ref.rsplit("/", 1)[-1]
        # the envelope of each type is inlined as the message payload, not kept as a component
        envelope_schema = copy.deepcopy(component_schemas.pop(name))
        payload_ref = envelope_schema["properties"]["payload"]["$ref"]
        payload_schema = _finish_envelope_schema(envelope_schema, cls, payload_ref, topics)
        messages[cls.event_type] = _message(cls, payload_schema, topics)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "BESS trading backend: event streams",
            "version": _project_version(),
            "description": (
                "Kafka topics of the event-sourced battery storage (BESS) trading backend. "
                "Every record value is a JSON envelope (event_id, event_type, schema_version, "
                "occurred_at, source, correlation_id, causation_id, key, payload); the record "
                "key is the envelope's key; the headers event_type and schema_version repeat "
                "the envelope's. Every topic has a dead-letter sibling `<topic>.dlq`.\n\n"
                "Generated by `python -m schemas.export` from schemas/catalog.py."
            ),
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            SERVER_ID: {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "title": "Kafka cluster",
                "description": "The Kafka (KRaft) cluster all topics live on.",
                "variables": {
                    "bootstrap": {
                        "default": DEFAULT_BOOTSTRAP,
                        "description": "Bootstrap server host:port (BESS_KAFKA_BOOTSTRAP).",
                    }
                },
            }
        },
        "channels": {channel_id(t): _channel(t) for t in topics},
        "operations": {operation_id(t): _operation(t) for t in topics},
        "components": {"schemas": component_schemas, "messages": messages},
    }


class _YamlDumper(yaml.SafeDumper):  # type: ignore[misc,unused-ignore]  # no PyYAML stubs
    """Safe YAML with multi-line strings (docstrings) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_YamlDumper.add_representer(str, _represent_str)


def _write_json(path: Path, document: JsonDict) -> Path:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def export(out_dir: Path, *, base_uri: str = DEFAULT_BASE_URI) -> list[Path]:
    """Write the JSON Schemas and the AsyncAPI document into `out_dir` (created if missing).

    Returns the written paths: one ``<EventType>.v<N>.schema.json`` per payload type, then
    ``asyncapi.json`` and ``asyncapi.yaml``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    topics = all_topics()
    written = [
        _write_json(
            out_dir / schema_file_name(cls),
            message_json_schema(cls, base_uri=base_uri, topics=topics),
        )
        for cls in payload_types(topics)
    ]
    document = asyncapi_document(topics)
    written.append(_write_json(out_dir / "asyncapi.json", document))
    yaml_path = out_dir / "asyncapi.yaml"
    yaml_path.write_text(
        yaml.dump(document, Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    written.append(yaml_path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m schemas.export OUT_DIR``: export and list the written files."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        sys.stderr.write(f"usage: python -m schemas.export OUT_DIR\n\n{__doc__}")
        return 2
    for path in export(Path(args[0])):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
