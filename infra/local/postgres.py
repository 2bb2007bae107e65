"""PostgreSQL from the machine's binaries: initdb on first start, pg_ctl start/stop.

PostgreSQL refuses to run as root; when we are root the server runs as the ``postgres`` system
user (created by Debian's package) and the data dir is handed to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from infra.local.process import ServiceError, port_open


def bin_dir() -> Path:
    """Directory of initdb/pg_ctl: ``$BESS_PG_BIN``, ``pg_config --bindir`` or Debian's path."""
    if env := os.environ.get("BESS_PG_BIN"):
        return Path(env)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for path in reversed(candidates):
        if Path(path, "initdb").exists():
            return Path(path)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServiceError("PostgreSQL server binaries not found: apt-get install postgresql")


class PostgresServer:
    """A PostgreSQL cluster in `data_dir` on 127.0.0.1:`port` with database and user ``bess``."""

    def __init__(self, data_dir: Path, port: int = 5433, fsync: bool = True):
        self.data_dir = data_dir
        self.port = port
        self.fsync = fsync
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://bess@127.0.0.1:{self.port}/bess"

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._user:
            argv = ["runuser", "-u", self._user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise ServiceError(f"{Path(argv[0]).name} failed: {result.stdout}{result.stderr}")
        return result

    def _chown(self, path: Path) -> None:
        if self._user:
            entry = pwd.getpwnam(self._user)
            for p in [path, *path.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        """initdb if needed, start the server, create role and database ``bess``."""
        pg = bin_dir()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._user:  # the server user must be able to reach its data dir
            for parent in self.data_dir.parents:
                mode = parent.stat().st_mode
                if parent != Path("/") and not mode & 0o001:
                    os.chmod(parent, mode | 0o711)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._chown(self.data_dir)
            os.chmod(self.data_dir, 0o700)
            self._run([str(pg / "initdb"), "-D", str(self.data_dir), "-U", "bess",
                       "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        sockets = self.data_dir / "sockets"
        sockets.mkdir(exist_ok=True)
        self._chown(sockets)
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {sockets} "
                f"-c max_connections=200 -c shared_buffers=256MB")
        if not self.fsync:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if not port_open("127.0.0.1", self.port):
            self._run([str(pg / "pg_ctl"), "-D", str(self.data_dir), "-o", opts,
                       "-l", str(self.data_dir / "postgres.log"), "-w", "-t", "60", "start"])
        exists = self._run([str(pg / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "bess", "-d", "postgres",
                            "-tAc", "SELECT 1 FROM pg_database WHERE datname='bess'"])
        if exists.stdout.strip() != "1":
            self._run([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                       "-U", "bess", "bess"])

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run([str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir),
                       "-m", "fast", "-w", "stop"],
                      check=False)
