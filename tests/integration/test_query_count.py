"""The store answers a command in a number of SQL statements that does not grow with the inventory.

What this proves: `status`, `renew` with nothing due, `check` of one host, `metrics` and one daemon
tick (the renew check over every certificate, then the reminder pass) each send the database the
same number of statements at 10 certificates as at 1,000 -- no query per row.  Statements are
counted with SQLAlchemy's ``before_cursor_execute`` event (an ``executemany`` counts once, as it is
one round trip) and, for the read path's own SQLite connections (`status`, `metrics`), with their
trace callback.  The commands run in-process through their public entry points (``certmgr.cli.main``
and the daemon's job function); the certificates are seeded through `csr` and `import` with a
local test CA, never by writing rows.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from certmgr.cli import main
from certmgr.config.load import load_config
from certmgr.runtime import Runtime
from certmgr.service.jobs import renew_job
from certmgr.store import rows
from certmgr.store.rows import connect
from tests.peers.pebble import ChallTestSrv
from tests.peers.smtpd import SmtpServer
from tests.peers.testca import TestCA, imported_inventory

SMALL, LARGE = 10, 1000


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("query count")


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChallTestSrv]:
    """A DNS server answering 127.0.0.1 for every name, for the name checks of `check`."""
    srv = ChallTestSrv(tmp_path_factory.mktemp("dns"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def smtpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path_factory.mktemp("smtpd")) as server:
        yield server


def seeded(root: Path, n: int, ca: TestCA, dns: ChallTestSrv, smtpd: SmtpServer) -> Path:
    """A config of ``n`` manual-CA MTAs, each with a certificate imported through `csr` + `import`."""
    return imported_inventory(root, n, ca, mta=f'smtp = "127.0.0.1:{smtpd.port}"\n',
                              certmgr=f'resolver = "{dns.dns_server}"')


@contextmanager
def counting() -> Iterator[list[str]]:
    """Every statement sent to a database: through SQLAlchemy (its ``before_cursor_execute``
    event) and through the read path's own SQLite connections (their trace callback)."""
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    def traced(uri: str) -> sqlite3.Connection:
        conn = connect(uri)
        conn.set_trace_callback(statements.append)
        return conn

    event.listen(Engine, "before_cursor_execute", count)
    rows.connect = traced
    try:
        yield statements
    finally:
        rows.connect = connect
        event.remove(Engine, "before_cursor_execute", count)


def daemon_tick(config: Path) -> None:
    rt = Runtime(load_config(config))
    try:
        renew_job(rt, lambda: False)
    finally:
        rt.close()


COMMANDS: dict[str, Callable[[Path], object]] = {
    "status": lambda c: main(["-c", str(c), "status", "--json"]),
    "renew, nothing due": lambda c: main(["-c", str(c), "renew", "--json"]),
    "check of one host": lambda c: main(["-c", str(c), "check", "--json", "mx0003.example.com"]),
    "metrics": lambda c: main(["-c", str(c), "metrics"]),
    "daemon tick": daemon_tick,
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory, ca: TestCA, dns: ChallTestSrv,
            smtpd: SmtpServer) -> Iterator[dict[int, Path]]:
    # in memory when the machine has a tmpfs: this test counts statements, and seeding a
    # thousand certificates on a busy disk is mostly fsync
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("inventories")
    try:
        yield {n: seeded(root / f"n{n}", n, ca, dns, smtpd) for n in (SMALL, LARGE)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_statement_count_does_not_grow_with_the_inventory(
        command: str, configs: dict[int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    counts: dict[int, list[str]] = {}
    for n, config in configs.items():
        COMMANDS[command](config)  # once to settle what a first run does (schema, inventory sync)
        with counting() as statements:
            COMMANDS[command](config)
        counts[n] = statements
    capsys.readouterr()
    small, large = len(counts[SMALL]), len(counts[LARGE])
    assert large == small, (
        f"{command}: {small} SQL statements at {SMALL} certificates, {large} at {LARGE}; "
        f"most frequent at {LARGE}: {most_frequent(counts[LARGE])}")


def most_frequent(statements: list[str]) -> list[tuple[int, str]]:
    tally: dict[str, int] = {}
    for s in statements:
        key = " ".join(s.split())[:120]
        tally[key] = tally.get(key, 0) + 1
    return sorted(((n, s) for s, n in tally.items()), reverse=True)[:5]
