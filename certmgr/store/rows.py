"""The read path of the commands that only display (`status`, `metrics`): plain rows of the
columns they show, every slot at once, without importing SQLAlchemy for SQLite.

Importing SQLAlchemy and SQLModel and building their objects cost more than the queries: half a
second of a 0.6 s `status`.  An SQLite database at the current schema (:data:`SCHEMA_HEAD`) is read
here through the standard library's driver, opened read-only as :func:`certmgr.store.db.read_only_engine`
opens it (``mode=ro``, else ``immutable``), so it works on a full or read-only disk.  Any other
database (PostgreSQL, or an SQLite file that must first be created or migrated) is read through
the driver connection of the :class:`certmgr.store.Store` engine, which migrates it as every command
does.  Either way the same SQL runs.

The tables and columns are named once: the table names below are the models' ``__tablename__``,
and each row's fields are columns of its table (a unit test checks both against the models).
Times come back as aware UTC datetimes, as the ORM returns them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote

from certmgr.errors import StateError
from certmgr.pki.keytypes import SlotKey

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: the newest migration; checked against the migrations folder by a unit test.  Knowing it
#: lets a process whose schema is current skip importing alembic (and this read path, SQLAlchemy).
SCHEMA_HEAD = "0007"
#: how long SQLite waits for another writer before giving up (CERTMGR_DB_TIMEOUT overrides)
SQLITE_TIMEOUT = 30.0

#: the tables the read path reads (the models name their tables with these)
SLOTS = "managed_cert"
VERSIONS = "cert_version"
DEPLOYMENTS = "deployment"
PROBES = "probe_result"
JOBS = "job_state"
DANE_STATES = "dane_state"
MTA_STS_STATES = "mta_sts_state"
#: the ``state`` of a DANE or MTA-STS row made by a first lease, before anything was recorded
NO_STATE = "{}"
#: the two kinds of DNS state (also the folders of the state files of earlier versions)
DANE, MTA_STS = "dane", "mta-sts"


@dataclass(frozen=True)
class Snapshot:
    """Every recorded rollover and MTA-STS domain (JSON text by name), read in two queries."""

    rollovers: dict[str, str]
    mta_sts: dict[str, str]


def legacy_files(state_dir: Path, kind: str) -> dict[str, Path]:
    """name -> the ``state.json`` an earlier version wrote for it (not yet imported)."""
    root = state_dir / kind
    return {p.parent.name: p for p in sorted(root.glob("*/state.json"))} if root.is_dir() else {}


class SlotRow(NamedTuple):
    """The columns of a slot (``managed_cert``) that ``status`` and ``metrics`` show."""

    id: int | None
    hostname: str
    key_alg: str
    key_type: str
    issuer: str
    state: str
    current_version_id: int | None
    attempts: int
    last_error: str | None
    next_retry_at: datetime | None
    renew_at: datetime | None
    last_attempt_at: datetime | None = None
    last_result: str | None = None

    @property
    def slot_key(self) -> SlotKey:
        return SlotKey(self.hostname, self.key_alg)


class VersionRow(NamedTuple):
    """The columns of a certificate version (``cert_version``) that ``status`` shows or matches on."""

    id: int | None
    managed_id: int
    serial: str
    key_alg: str
    key_bits: int
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str
    revoked_at: datetime | None


class DeploymentRow(NamedTuple):
    """A deployment (``deployment``) as ``status`` shows it."""

    id: int | None
    managed_id: int
    version_id: int
    target: str
    result: str
    reason: str | None
    started_at: datetime
    verified_at: datetime | None


class ProbeRow(NamedTuple):
    """A stored probe (``probe_result``) as ``status`` and ``metrics`` show it."""

    id: int | None
    hostname: str | None
    ts: datetime
    status: str
    problems: str
    served_sha256: str | None
    report: str


#: row class -> its table
TABLES: dict[type[Any], str] = {SlotRow: SLOTS, VersionRow: VERSIONS, DeploymentRow: DEPLOYMENTS, ProbeRow: PROBES}

RowT = TypeVar("RowT")
#: runs one SQL statement (no parameters) and returns its rows
Query = Callable[[str], Sequence[Sequence[Any]]]


def utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime: SQLite holds ``2026-11-30 04:12:57.000000``
    (UTC, no offset; what SQLModel's ``UTCDateTime`` writes), PostgreSQL returns aware datetimes."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _decoder(cls: type[RowT]) -> Callable[[Sequence[Any]], RowT]:
    make: Callable[[Sequence[Any]], RowT] = cls._make  # type: ignore[attr-defined]
    times = [i for i, kind in enumerate(cls.__annotations__.values()) if "datetime" in str(kind)]

    def decode(values: Sequence[Any]) -> RowT:
        row = list(values)
        for i in times:
            if row[i] is not None:
                row[i] = utc(row[i])
        return make(row)

    return decode


def _columns(cls: type[Any], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + f for f in cls._fields)


class Rows:
    """The reads of display-only commands, each one query whatever the inventory holds."""

    def __init__(self, url: str, query: Query, close: Callable[[], None] = lambda: None) -> None:
        self.url = url
        self._query = query
        self._close = close

    def close(self) -> None:
        self._close()

    def query(self, sql: str) -> Sequence[Sequence[Any]]:
        """Run one statement (no parameters) on this read path (:mod:`certmgr.store.practice_rows`)."""
        return self._query(sql)

    def _rows(self, cls: type[RowT], sql: str) -> list[RowT]:
        decode = _decoder(cls)
        return [decode(r) for r in self._query(sql)]

    def slot_rows(self) -> list[SlotRow]:
        """Every slot, by hostname and key algorithm."""
        return self._rows(SlotRow, f"SELECT {_columns(SlotRow)} FROM {SLOTS} ORDER BY hostname, key_alg")

    def history_rows(self) -> dict[int, list[VersionRow]]:
        """Slot id -> every certificate it ever had, newest first."""
        out: dict[int, list[VersionRow]] = {}
        for v in self._rows(VersionRow, f"SELECT {_columns(VersionRow)} FROM {VERSIONS} ORDER BY id DESC"):
            out.setdefault(v.managed_id, []).append(v)
        return out

    def current_versions(self) -> dict[int, VersionRow]:
        """Slot id -> its current certificate, for every slot that has one."""
        rows = self._rows(VersionRow, f"SELECT {_columns(VersionRow, 'v')} FROM {VERSIONS} v "
                                      f"JOIN {SLOTS} s ON s.current_version_id = v.id")
        return {v.managed_id: v for v in rows}

    def latest_deployments(self) -> dict[int, tuple[DeploymentRow, DeploymentRow | None]]:
        """Slot id -> (its newest deployment, its newest verified one)."""
        sql = (f"SELECT {_columns(DeploymentRow, 'd')} FROM {DEPLOYMENTS} d JOIN ("
               "SELECT id, row_number() OVER (PARTITION BY managed_id ORDER BY id DESC) AS newest, "
               "row_number() OVER (PARTITION BY managed_id, result = 'verified' ORDER BY id DESC) AS newest_of_kind "
               f"FROM {DEPLOYMENTS}) r ON r.id = d.id "
               "WHERE r.newest = 1 OR (d.result = 'verified' AND r.newest_of_kind = 1) ORDER BY d.id DESC")
        out: dict[int, tuple[DeploymentRow, DeploymentRow | None]] = {}
        for d in self._rows(DeploymentRow, sql):  # newest first: a slot's first row is its newest
            last, last_verified = out.get(d.managed_id, (d, None))
            out[d.managed_id] = (last, last_verified or (d if d.result == "verified" else None))
        return out

    def recent_probes(self, limit: int) -> dict[str, list[ProbeRow]]:
        """Hostname -> its newest ``limit`` probe results, newest first."""
        sql = (f"SELECT {_columns(ProbeRow, 'p')} FROM {PROBES} p JOIN ("
               f"SELECT id, row_number() OVER (PARTITION BY hostname ORDER BY id DESC) AS n FROM {PROBES}) r "
               f"ON r.id = p.id WHERE r.n <= {int(limit)} ORDER BY p.id DESC")
        out: dict[str, list[ProbeRow]] = {}
        for p in self._rows(ProbeRow, sql):
            if p.hostname is not None:
                out.setdefault(p.hostname, []).append(p)
        return out

    def has_versions(self) -> bool:
        """Has any certificate ever been recorded?"""
        return bool(self._query(f"SELECT 1 FROM {VERSIONS} LIMIT 1"))

    def has_pending_keys(self) -> bool:
        """Does a slot hold the key of an issuance under way (or interrupted)?"""
        return bool(self._query(f"SELECT 1 FROM {SLOTS} WHERE pending_key_path IS NOT NULL "
                                "AND pending_key_path <> '' LIMIT 1"))

    def dns_snapshot(self, state_dir: Path) -> Snapshot:
        """Every recorded DANE rollover and MTA-STS domain, in one query per table; the state
        files of earlier versions not imported yet (``state_dir``) are shown as they are."""
        dane = self._query(f"SELECT hostname, state FROM {DANE_STATES} WHERE state <> '{NO_STATE}'")
        sts = self._query(f"SELECT domain, state FROM {MTA_STS_STATES} WHERE state <> '{NO_STATE}'")
        found = {DANE: {str(h): str(s) for h, s in dane}, MTA_STS: {str(d): str(s) for d, s in sts}}
        for kind, names in found.items():
            for name, path in legacy_files(state_dir, kind).items():
                names.setdefault(name, path.read_text())
        return Snapshot(found[DANE], found[MTA_STS])

    def job_successes(self) -> dict[str, datetime | None]:
        """Job name -> its last successful run."""
        return {str(name): None if at is None else utc(at)
                for name, at in self._query(f"SELECT name, last_success FROM {JOBS}")}


def open_rows(url: str, store_engine: Callable[[], Engine]) -> Rows:
    """The rows of the database at ``url``: an SQLite file at :data:`SCHEMA_HEAD` through the
    standard library (read-only), anything else through ``store_engine()``, the engine of the
    process's :class:`certmgr.store.Store` (which creates or migrates the database first)."""
    path = sqlite_file(url)
    if path is not None and path.exists():
        conn = connect_read_only(path)
        if revision(conn) == SCHEMA_HEAD:
            return Rows(url, _sqlite_query(conn), conn.close)
        conn.close()
    return Rows(url, engine_query(store_engine()))


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for any other URL (those, and SQLite
    URLs with options, are read through SQLAlchemy, which knows every form)."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            db = url[len(prefix):]
            return Path(db) if db and db != ":memory:" and not set(db) & set("?%") else None
    return None


def connect(uri: str) -> sqlite3.Connection:
    """Open an SQLite URI (the one place this module connects: tests trace its statements)."""
    return sqlite3.connect(uri, uri=True, timeout=sqlite_timeout(), check_same_thread=False)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes ``path`` nor creates files beside it: ``mode=ro`` reads a
    live database (the daemon's WAL included) but needs the ``-shm`` file, which SQLite cannot
    create on a read-only or full file system; then the file is opened ``immutable``."""
    error: sqlite3.Error | None = None
    for query in ("mode=ro", "immutable=1"):
        try:
            conn = connect(f"file:{quote(str(path))}?{query}")
        except sqlite3.Error as e:
            error = e
            continue
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as e:
            conn.close()
            error = e
            continue
        return conn
    raise StateError(f"cannot read the database {path}: " + explain(str(error), "check that it is readable"))


def revision(conn: sqlite3.Connection) -> str | None:
    """The schema revision alembic stamped (None: no such table yet)."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _sqlite_query(conn: sqlite3.Connection) -> Query:
    lock = threading.Lock()  # the daemon's metrics endpoint reads from its own thread

    def query(sql: str) -> list[Any]:
        with lock:
            return conn.execute(sql).fetchall()

    return query


def engine_query(engine: Engine) -> Query:
    """Run the statements on a connection of ``engine`` (PostgreSQL, or SQLite via SQLAlchemy)."""

    def query(sql: str) -> list[Any]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]

    return query


def sqlite_timeout() -> float:
    value = os.environ.get("CERTMGR_DB_TIMEOUT", "")
    try:
        return max(0.0, float(value)) if value else SQLITE_TIMEOUT
    except ValueError:
        raise StateError(f"CERTMGR_DB_TIMEOUT={value!r} is not a number of seconds") from None


def explain(text: str, advice: str) -> str:
    """The driver's message ``text``, with what it usually means and what to do."""
    if "database is locked" in text:
        return (f"{text}: another program held a write transaction open for more than "
                f"{sqlite_timeout():g} s (a second certmgr with a stuck step, or an sqlite3 shell "
                "left inside BEGIN); nothing was saved; close it and try again")
    if "readonly database" in text:
        return f"{text} (the file, its directory or the file system is read-only); {advice}"
    if "disk I/O error" in text:
        return f"{text} (usually a full disk or a file system that went read-only); {advice}"
    return f"{text}; {advice}"
