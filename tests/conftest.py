"""Shared fixtures. Integration tests run against a REAL Apache Kafka broker and PostgreSQL.

By default the session starts its own (embedded launchers, free ports, a temp dir); set
``BESS_TEST_KAFKA_BOOTSTRAP`` and ``BESS_TEST_POSTGRES_DSN`` to use external ones instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from infra.settings import PROJECT_ROOT, Settings


class Services:
    def __init__(self, bootstrap: str, dsn: str, home: Path):
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.home = home

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "BESS_KAFKA_BOOTSTRAP": self.bootstrap, "BESS_POSTGRES_DSN": self.dsn,
                "BESS_HOME": str(self.home), "BESS_LOG_JSON": "true", **extra}

    def settings(self, **overrides: object) -> Settings:
        return Settings(kafka_bootstrap=self.bootstrap, postgres_dsn=self.dsn, home=self.home,
                        **overrides)  # type: ignore[arg-type]

    def spawn(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"{log_name}.log", "ab")  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "infra.cli", *args], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                start_new_session=True)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Kafka + Postgres for the whole session, with the catalog topics created."""
    from infra.kafka_io import ensure_topics
    from infra.local.kafka import KafkaServer
    from infra.local.postgres import PostgresServer
    from infra.local.process import free_port

    home = Path(tempfile.mkdtemp(prefix="bess-test-"))
    started: list[KafkaServer | PostgresServer] = []
    bootstrap = os.environ.get("BESS_TEST_KAFKA_BOOTSTRAP")
    dsn = os.environ.get("BESS_TEST_POSTGRES_DSN")
    try:
        if dsn is None:
            pg = PostgresServer(home / "postgres", port=free_port(), fsync=False)
            pg.start()
            started.append(pg)
            dsn = pg.dsn
        if bootstrap is None:
            kafka = KafkaServer(home / "kafka", port=free_port(), controller_port=free_port())
            kafka.start()
            started.append(kafka)
            bootstrap = kafka.bootstrap
        asyncio.run(ensure_topics(bootstrap))
        yield Services(bootstrap, dsn, home)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="session")
def indicators_worker(services: Services) -> Iterator[subprocess.Popen[bytes]]:
    """The real faust indicators processor as a subprocess for the session."""
    proc = services.spawn("worker", "indicators", log_name="indicators-worker")
    time.sleep(1)
    yield proc
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def mosquitto(services: Services) -> Iterator[int]:
    """A real Mosquitto broker (Debian's binary) on a free port; yields the port."""
    from infra.local.mosquitto import MosquittoServer
    from infra.local.process import free_port

    broker = MosquittoServer(services.home / "mosquitto", port=free_port())
    broker.start()
    yield broker.port
    broker.stop()


@pytest.fixture
async def pg(services: Services) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(services.dsn)
    yield conn
    await conn.close()
