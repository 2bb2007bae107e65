"""Apache Kafka from Maven Central: fetch the jars, format KRaft storage, run one node.

The jars are resolved by Maven from `infra/kafka/pom.xml` (pinned `KAFKA_VERSION`) into the
local Maven repository and copied to ``<cache>/kafka-<version>/libs``; the broker runs as
``java -cp libs/* kafka.Kafka server.properties`` with the machine's JDK 17. The node is both
controller and broker and is configured for transactions on one node (replication factor 1,
min ISR 1 for the transaction state log).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from infra.local.process import ManagedProcess, ServiceError
from infra.settings import KAFKA_VERSION, PROJECT_ROOT

POM = PROJECT_ROOT / "infra" / "kafka" / "pom.xml"

LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


def cache_dir() -> Path:
    """Where fetched Kafka jars live (``$BESS_CACHE`` or ``~/.cache/bess``)."""
    return Path(os.environ.get("BESS_CACHE", Path.home() / ".cache" / "bess"))


def fetch_kafka(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker jars with Maven and return the libs dir. Raises ServiceError."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is needed to fetch Kafka: apt-get install maven")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}",
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"mvn could not fetch Kafka {version}: {result.stdout[-2000:]}")
    tmp.rename(libs)
    return libs


def java() -> str:
    """The java binary (``$JAVA_HOME/bin/java`` or PATH). Raises ServiceError."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ServiceError("a Java 17+ runtime is needed for Kafka: apt-get install openjdk-17-jre")
    return found


class KafkaServer:
    """A single-node KRaft broker+controller in `data_dir`, listening on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path, port: int = 9092, controller_port: int = 9093,
                 heap: str = "768m", version: str = KAFKA_VERSION):
        self.data_dir = data_dir
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.version = version
        self.process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "3",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.data_dir / "log4j2.yaml").write_text(LOG4J2)
        return path

    def start(self, timeout_s: float = 90.0) -> None:
        """Fetch jars if needed, format storage on first start, launch, wait for the port."""
        libs = fetch_kafka(self.version)
        config = self._write_config()
        classpath = f"{libs}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = str(uuid.uuid4())  # any 16-byte id works; StorageTool checks base64
            cluster_id = subprocess.run(
                [java(), "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True, text=True, check=True,
            ).stdout.strip() or cluster_id
            fmt = subprocess.run(
                [java(), "-cp", classpath,
                 f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
                 "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)],
                capture_output=True, text=True, check=False,
            )
            if fmt.returncode != 0:
                raise ServiceError(f"kafka storage format failed: {fmt.stdout}{fmt.stderr}")
        self.process = ManagedProcess(
            "kafka",
            [java(), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
             "-cp", classpath, "kafka.Kafka", str(config)],
            self.data_dir / "kafka.log",
        )
        self.process.start()
        self.process.wait_port("127.0.0.1", self.port, timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout_s=30)
