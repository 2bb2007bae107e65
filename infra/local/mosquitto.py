"""Mosquitto MQTT broker from Debian's package, on 127.0.0.1:`port`."""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.local.process import ManagedProcess, ServiceError


class MosquittoServer:
    """An anonymous-access Mosquitto listening on loopback only."""

    def __init__(self, data_dir: Path, port: int = 1883):
        self.data_dir = data_dir
        self.port = port
        self.process: ManagedProcess | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ServiceError("mosquitto not found: apt-get install mosquitto")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stdout\n"
        )
        self.process = ManagedProcess("mosquitto", [binary, "-c", str(conf)],
                                      self.data_dir / "mosquitto.log")
        self.process.start()
        self.process.wait_port("127.0.0.1", self.port, timeout_s)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
