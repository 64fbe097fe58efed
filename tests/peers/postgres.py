"""A private PostgreSQL 15 server for integration tests.

``initdb`` runs as the ``postgres`` user (PostgreSQL refuses to run as root) into a
fresh directory under the system temp dir: pytest's ``tmp_path`` lives below a 0700
root-owned directory the ``postgres`` user cannot enter.  The server listens on a
unix socket inside that directory and on 127.0.0.1:<free port>, with trust
authentication for local connections only, and is stopped and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.peers.util import free_port, wait_port

PG_BIN = Path(os.environ.get("CERTMGR_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def _require() -> None:
    missing = [b for b in ("initdb", "pg_ctl", "postgres", "psql") if not (PG_BIN / b).exists()]
    problem = None
    if missing:
        problem = f"PostgreSQL binaries {', '.join(missing)} are missing in {PG_BIN}"
    elif shutil.which("runuser") is None:
        problem = "runuser is missing (util-linux)"
    else:
        try:
            import pwd

            pwd.getpwnam(PG_USER)
        except KeyError:
            problem = f"there is no {PG_USER} system user"
    if problem is None:
        return
    msg = f"{problem}; run scripts/setup.sh (it installs postgresql)"
    if os.environ.get("CERTMGR_ALLOW_SKIP") == "1":
        pytest.skip(msg)
    pytest.fail(msg)


class Postgres:
    """One server; ``stop()`` and ``start()`` may be called again (data is kept)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.sockets = root / "run"
        self.logfile = root / "postgres.log"
        self.port = free_port()
        self.running = False

    def _as_postgres(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(["runuser", "-u", PG_USER, "--", *argv], capture_output=True, text=True,
                           timeout=timeout, cwd=self.root)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n"
                               f"{self.log_text()[-3000:]}")
        return r

    def init(self) -> None:
        import pwd

        pw = pwd.getpwnam(PG_USER)
        self.sockets.mkdir(parents=True, exist_ok=True)
        for p in (self.root, self.sockets):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o700)
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust",
                          "--encoding=UTF8", "--no-sync", "--no-instructions")
        conf = self.data / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                "max_connections = 300\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 32MB\n"
            )
        # trust only for local connections: the unix socket and loopback
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    def start(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                          "-w", "-t", "60", "start")
        wait_port(self.port, timeout=30)
        self.running = True

    def stop(self) -> None:
        if not self.running:
            return
        r = self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                              "stop", check=False)
        if r.returncode != 0:
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop",
                              check=False)
        self.running = False

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run SQL through psql on the unix socket; return the unaligned, tuples-only output."""
        r = self._as_postgres(str(PG_BIN / "psql"), "-h", str(self.sockets), "-p", str(self.port), "-d", db,
                              "-v", "ON_ERROR_STOP=1", "-At", "-c", sql)
        return r.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; return its SQLAlchemy URL (no password: trust auth)."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A fresh server; stopped and its directory removed afterwards."""
    _require()
    root = Path(tempfile.mkdtemp(prefix="certmgr-pg-"))
    pg = Postgres(root)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        try:
            pg.stop()
        finally:
            # the server may need a moment to release its files after a fast stop
            for _ in range(20):
                try:
                    shutil.rmtree(root)
                    break
                except OSError:
                    time.sleep(0.1)
