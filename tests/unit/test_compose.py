"""The docker-compose deployment: valid against the Compose Specification JSON Schema, and
internally consistent (dependencies, healthchecks, mounted files, CLI commands, scrape targets).

No Docker needed: the schema is a vendored copy (see tests/fixtures/README.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from typer.testing import CliRunner

from infra.cli import app as bess_cli

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE_SCHEMA = PROJECT_ROOT / "tests" / "fixtures" / "compose-spec.schema.json"

APP_ENV = {
    "BESS_KAFKA_BOOTSTRAP": "kafka:9092",
    "BESS_POSTGRES_DSN": "postgresql://bess:bess@postgres:5432/bess",
    "BESS_MQTT_HOST": "mosquitto",
}
APP_COMMANDS = {
    "topics-init": ["topics", "create"],
    "indicators": ["worker", "indicators", "--web-port", "6066"],
    "projector": ["projector", "all"],
    "market-data": ["gateway", "market-data", "--source", "file"],
    "api": ["api"],
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    return (
        {name: {"condition": "service_started"} for name in deps}
        if isinstance(deps, list)
        else deps
    )


def _host_path(volume: str) -> Path | None:
    source = volume.split(":", 1)[0]
    return PROJECT_ROOT / source if source.startswith(".") else None


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]

    assert errors == []


BROKEN: dict[str, tuple[tuple[str, ...], object]] = {
    "unknown depends_on condition": (
        ("services", "api", "depends_on", "postgres", "condition"),
        "service_ready",
    ),
    "interval without unit": (("services", "kafka", "healthcheck", "interval"), 10),
    "misspelt key": (("services", "api", "restrat"), "always"),
    "command not a list or string": (("services", "api", "command"), {"run": "api"}),
}


@pytest.mark.parametrize("path, value", BROKEN.values(), ids=BROKEN.keys())
def test_the_schema_rejects_a_broken_file(
    compose: dict[str, Any], path: tuple[str, ...], value: object
) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value

    assert not Draft202012Validator(schema).is_valid(broken)


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "postgres", "mosquitto", "prometheus", *APP_COMMANDS} <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["prometheus"]["image"].startswith("prom/prometheus")


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_dependencies_exist_and_their_conditions_can_be_met(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dep, spec in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} must be a one-shot"


def test_dependencies_have_no_cycle(services: dict[str, dict[str, Any]]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for dep in _depends_on(services[name]):
                visit(dep, (*path, name))
            done.add(name)

    for name in services:
        visit(name, ())


def test_ports_are_well_formed_and_unique(services: dict[str, dict[str, Any]]) -> None:
    published: list[str] = []
    for name, service in services.items():
        for port in service.get("ports", []):
            match = re.fullmatch(r"(?:(\d+\.\d+\.\d+\.\d+):)?(\d+):(\d+)(?:/(tcp|udp))?", port)
            assert match, f"{name}: {port}"
            host_port, container_port = int(match[2]), int(match[3])
            assert 0 < host_port < 65536 and 0 < container_port < 65536
            published.append(match[2])
    assert len(published) == len(set(published))


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            path = _host_path(volume) if isinstance(volume, str) else None
            if path is not None:
                assert path.exists(), f"{name} mounts missing {path}"


def test_kafka_runs_kraft_single_node(services: dict[str, dict[str, Any]]) -> None:
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    listener_names = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    protocol_map = dict(
        p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert listener_names == set(protocol_map)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listener_names
    for single in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[single] == 1, single


def test_app_services_run_the_bess_image_with_their_command(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, command in APP_COMMANDS.items():
        service = services[name]
        assert service["build"]["context"] == "."
        assert service["command"] == command
        assert APP_ENV.items() <= service["environment"].items(), name
        deps = _depends_on(service)
        if name != "topics-init":
            assert deps["topics-init"]["condition"] == "service_completed_successfully", name
            assert deps["kafka"]["condition"] == "service_healthy", name
    for name in ("api", "projector"):
        assert _depends_on(services[name])["postgres"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["BESS_API_HOST"] == "0.0.0.0"
    assert "healthcheck" in services["api"] and "healthcheck" in services["indicators"]


@pytest.mark.parametrize("name", APP_COMMANDS)
def test_commands_exist_in_the_bess_cli(name: str) -> None:
    """Each command parses with the real CLI (``--help`` stops before anything runs)."""
    result = CliRunner().invoke(bess_cli, [*APP_COMMANDS[name], "--help"])
    assert result.exit_code == 0, result.output


def test_dockerfile_installs_the_project_and_runs_bess() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", text, re.MULTILINE)
    assert 'ENTRYPOINT ["bess"]' in text
    for package in ("schemas", "domain", "streams", "projections", "gateways", "api", "infra"):
        assert re.search(rf"^COPY {package} ", text, re.MULTILINE), package


def test_prometheus_scrapes_the_api_and_the_workers(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "infra" / "deploy" / "prometheus.yml").read_text())
    targets = {
        (target, job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert ("api:8000", "/metrics") in targets
    assert ("indicators:6066", "/metrics") in targets
    for target, _ in targets:
        host = target.split(":")[0]
        assert host == "localhost" or host in services, target


def test_mosquitto_listens_where_the_apps_look() -> None:
    conf = (PROJECT_ROOT / "infra" / "deploy" / "mosquitto.conf").read_text()
    assert re.search(r"^listener 1883\b", conf, re.MULTILINE)
    assert re.search(r"^persistence_location /mosquitto/data/", conf, re.MULTILINE)
