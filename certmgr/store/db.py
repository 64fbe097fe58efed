"""Engine, migrations and sessions.  Only the store package opens sessions."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from certmgr.errors import StateError
from certmgr.store.rows import SCHEMA_HEAD as SCHEMA_HEAD  # defined beside the read path, which checks it
from certmgr.store.rows import SQLITE_TIMEOUT as SQLITE_TIMEOUT
from certmgr.store.rows import connect_read_only
from certmgr.store.rows import explain as explain_text
from certmgr.store.rows import sqlite_timeout as sqlite_timeout

_MIGRATIONS = Path(__file__).parent / "migrations"
#: any constant; every certmgr node takes this advisory lock while migrating
_MIGRATION_LOCK = 0x63657274


#: connections kept open when the caller names no number (the default renewal concurrency)
DEFAULT_CONNECTIONS = 16


def make_engine(url: str, connections: int = DEFAULT_CONNECTIONS) -> Engine:
    """An engine whose pool holds ``connections`` (the renewal concurrency: no worker waits for
    a connection) and as many again for short overflows."""
    pool = {"pool_size": max(1, connections), "max_overflow": max(1, connections)}
    if url.startswith("sqlite"):
        timeout = sqlite_timeout()
        in_memory = sqlite_path(url) is None  # one connection shared by every thread
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout},
                               **({} if in_memory else pool))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers (status) run while a renewal writes; busy_timeout waits for a
            # writer instead of failing with "database is locked".
            cur.execute("PRAGMA journal_mode=WAL")
            # in WAL mode NORMAL syncs at checkpoints, not at each commit: a committed step
            # survives a killed process (the WAL is in the OS's hands), and only a power loss
            # or kernel crash can lose the last commits -- never corrupt the database.  See
            # the README, "Durability of the state database".
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        if not in_memory:
            _writers[engine] = threading.RLock()
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


#: SQLite file engine -> the lock its sessions take in turn.  SQLite has one writer at a time,
#: and a writer that finds the file locked polls in growing sleeps (up to 100 ms each): with
#: 16 renewal threads most of a run went to those sleeps.  Threads of one process queue here
#: instead and wake at once; other processes are still waited for by ``busy_timeout``.
_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and for in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    db = make_url(url).database
    return Path(db) if db and db != ":memory:" else None


def read_only_engine(path: Path) -> Engine:
    """An engine that never writes the SQLite file ``path`` nor creates files beside it: its
    connections are the read path's (:func:`certmgr.store.rows.connect_read_only`, ``mode=ro``
    or else ``immutable``), so both open a database alike and fail with the same error."""
    from sqlalchemy.pool import QueuePool

    connect_read_only(path).close()  # a database that cannot be read is said here, naming it
    return create_engine("sqlite://", creator=lambda: connect_read_only(path), poolclass=QueuePool)


def can_write(url: str) -> str | None:
    """Why the database cannot be written now (None when it probably can).

    For SQLite: its directory read-only, or less than :data:`MIN_FREE_BYTES` free, so a
    write would fail half-way ("disk I/O error").  A server database is assumed writable.
    """
    path = sqlite_path(url)
    if path is None:
        return None
    if not os.access(path.parent, os.W_OK):
        return f"{path.parent} is not writable (read-only file system or permissions)"
    st = os.statvfs(path.parent)
    if st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
        return f"the file system of {path.parent} is full"
    return None


#: below this much free space a SQLite write is not tried (WAL and shared-memory files grow)
MIN_FREE_BYTES = 1 << 20


def explain(error: DBAPIError, advice: str) -> str:
    """The driver's message, with what it usually means and what to do."""
    return explain_text(str(error.orig), advice)


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None  # no such table yet (or no server): migrate() decides and explains


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest version; safe when several nodes start at once."""
    if current_revision(engine) == SCHEMA_HEAD:
        return
    with _sqlite_file_lock(engine):
        if _create_if_empty(engine):
            return
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    heads = set(script.get_heads())
    with _sqlite_file_lock(engine):
        _upgrade(engine, cfg, heads)


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """SQLite has no advisory locks: serialise migrations of one file with flock."""
    db = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    import fcntl

    try:
        fh = open(f"{db}.migrate-lock", "a+b")
    except OSError as e:  # read-only file system, disk full, permissions
        raise StateError(f"cannot open the database {db}: {e.strerror}; "
                         "check that the state directory is writable and has free space") from e
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _create_if_empty(engine: Engine) -> bool:
    """Create a database without tables from the models and stamp it at :data:`SCHEMA_HEAD`
    (one transaction; running every migration took half a second).  False when it has tables:
    an existing database is migrated.  A unit test keeps the models and the migrations equal."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect
    from sqlmodel import SQLModel

    import certmgr.store.models  # noqa: F401  (registers the tables)

    version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the driver would run DDL outside a transaction
            elif conn.dialect.name == "postgresql":
                # serialises concurrent creations; released at commit
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            if inspect(conn).get_table_names():
                conn.rollback()
                return False
            SQLModel.metadata.create_all(conn)
            version.create(conn)
            conn.execute(version.insert().values(version_num=SCHEMA_HEAD))
            conn.commit()
            return True
    except DBAPIError as e:  # also "file is not a database" (a damaged or foreign file)
        raise StateError(f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
                         + explain(e, "check that it is reachable and writable")) from e


def _upgrade(engine: Engine, cfg: Any, heads: set[str]) -> None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            if set(MigrationContext.configure(conn).get_current_heads()) == heads:
                return
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # serialises concurrent migrations; released at commit
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            if set(MigrationContext.configure(conn).get_current_heads()) == heads:
                return
            from alembic import command

            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except DBAPIError as e:  # also "file is not a database" (a damaged or foreign file)
        raise StateError(f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
                         + explain(e, "check that it is reachable and writable")) from e


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with _writers.get(engine) or contextlib.nullcontext(), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except OperationalError as e:
            session.rollback()
            raise _not_saved(engine, e) from e
        except BaseException:
            session.rollback()
            raise


@contextlib.contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A session for reads only.  It does not queue behind the process's writers (see
    ``_writers``): SQLite in WAL mode, like PostgreSQL, lets readers run beside the one writer,
    and a renewal worker's read would otherwise wait for every other worker's steps."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextlib.contextmanager
def write_scope(engine: Engine) -> Iterator[Connection]:
    """A transaction of plain statements (no ORM unit of work, which costs three times the
    statements themselves): for the lifecycle steps, written a dozen times per certificate."""
    with _writers.get(engine) or contextlib.nullcontext():
        try:
            with engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise _not_saved(engine, e) from e


def _not_saved(engine: Engine, e: OperationalError) -> StateError:
    where = engine.url.render_as_string(hide_password=True)
    return StateError(f"database {where}: " + explain(
        e, "the change was not saved; check that the database is reachable and writable"))
