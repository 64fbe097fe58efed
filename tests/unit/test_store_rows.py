"""The read path (:mod:`certmgr.store.rows`) reads what the ORM wrote, the way the ORM reads it.

Rows are written through the :class:`Store` API (the writers' path), then read both ways: the
plain rows of the standard library's SQLite driver must hold the same values as the ORM objects,
times included (aware, UTC, also for a time written with another offset).  The row fields and
table names are the models' own; a database at another schema revision is left to the Store,
which migrates it; a file that is not a database is the error of the read-only store.
(PostgreSQL: tests/integration/test_postgres_rows.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import certmgr.store.models  # noqa: F401  (registers the tables)
from certmgr.errors import StateError
from certmgr.store import CertVersion, Deployment, ProbeRecord, Store, queue
from certmgr.store.rows import (
    DANE_STATES,
    JOBS,
    MTA_STS_STATES,
    TABLES,
    Rows,
    engine_query,
    open_rows,
)

#: written with a +02:00 offset: read back as the same instant in UTC
T0 = datetime(2026, 11, 30, 14, 12, 57, 123456, tzinfo=timezone(timedelta(hours=2)))


def no_store() -> Engine:
    raise AssertionError("the read path opened the Store for an SQLite database at the current schema")


def seed(s: Store) -> None:
    """One slot with a current certificate, two deployments (verified, then failed), a probe and
    a finished job, written through the Store API."""
    slot = s.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "corp")
    assert slot.id is not None
    v = s.add_version(CertVersion(managed_id=slot.id, serial="0a", names='["mx1.example.com"]', key_alg="ecdsa",
                                  key_bits=256, not_before=T0, not_after=T0 + timedelta(days=90), sha256="ab" * 32,
                                  issuer="corp", created_at=T0))
    s.update_slot(slot.id, current_version_id=v.id, state="verified", renew_at=T0 + timedelta(days=60),
                  last_attempt_at=T0, last_result="success")
    assert v.id is not None
    s.add_deployment(Deployment(managed_id=slot.id, version_id=v.id, target="postfix", result="verified",
                                started_at=T0, verified_at=T0 + timedelta(seconds=3)))
    s.add_deployment(Deployment(managed_id=slot.id, version_id=v.id, target="postfix", result="failed",
                                reason="reload failed", started_at=T0 + timedelta(hours=1)))
    s.add_probe(ProbeRecord(hostname="mx1.example.com", target="mx1.example.com:25", ts=T0, status="ok",
                            served_sha256="ab" * 32))
    queue.start_job(s, "renew", "node:1", T0, 60)
    queue.finish_job(s, "renew", "node:1", T0, error=None, next_run=None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'certmgr.db'}")
    seed(s)
    yield s
    s.close()


def assert_rows_hold_what_the_orm_reads(rows: Rows, store: Store) -> None:
    (slot,) = rows.slot_rows()
    (orm_slot,) = store.slots()
    for field in slot._fields:
        assert getattr(slot, field) == getattr(orm_slot, field), field
    assert slot.renew_at is not None and slot.renew_at.tzinfo is UTC
    assert slot.last_attempt_at == T0 and slot.last_attempt_at.utcoffset() == timedelta(0)

    assert slot.id is not None
    (version,) = rows.history_rows()[slot.id]
    orm_version = store.version(slot.current_version_id)
    assert orm_version is not None
    assert version == tuple(getattr(orm_version, f) for f in version._fields)
    assert version.not_after == T0 + timedelta(days=90) and version.not_after.tzinfo is UTC
    assert rows.current_versions() == {slot.id: version}

    last, verified = rows.latest_deployments()[slot.id]
    assert (last.result, last.reason, last.verified_at) == ("failed", "reload failed", None)
    assert verified is not None and verified.verified_at == T0 + timedelta(seconds=3)
    assert verified.verified_at.tzinfo is UTC
    assert [d.id for d in store.deployments(slot.id)] == [last.id, verified.id]

    (probe,) = rows.recent_probes(4)["mx1.example.com"]
    orm_probe = store.last_probe("mx1.example.com")
    assert orm_probe is not None
    assert probe == tuple(getattr(orm_probe, f) for f in probe._fields)
    assert rows.job_successes() == {"renew": T0}
    assert rows.has_versions() and not rows.has_pending_keys()


def test_row_fields_are_the_columns_of_the_models_tables() -> None:
    tables = SQLModel.metadata.tables  # the models' tables, by name
    for cls, table in TABLES.items():
        assert table in tables, table
        missing = set(cls._fields) - set(tables[table].c.keys())
        assert not missing, (cls.__name__, missing)
    assert {DANE_STATES, MTA_STS_STATES, JOBS} <= set(tables)


def test_sqlite_rows_hold_what_the_orm_reads(store: Store) -> None:
    rows = open_rows(store.url, no_store)
    try:
        assert_rows_hold_what_the_orm_reads(rows, store)
    finally:
        rows.close()


def test_the_engine_path_reads_the_same_rows(store: Store) -> None:
    """What PostgreSQL goes through (the Store engine's driver connection), here on SQLite."""
    direct = open_rows(store.url, no_store)
    through_engine = Rows(store.url, engine_query(store.engine))
    try:
        assert through_engine.slot_rows() == direct.slot_rows()
        assert through_engine.history_rows() == direct.history_rows()
        assert through_engine.latest_deployments() == direct.latest_deployments()
        assert through_engine.recent_probes(1) == direct.recent_probes(1)
        assert through_engine.job_successes() == direct.job_successes()
    finally:
        direct.close()


def test_another_schema_revision_is_left_to_the_store(store: Store) -> None:
    """As the read-only store does: a database not at the current schema is opened (and
    migrated) by the Store, never read as if it were current."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0006'")
    opened: list[str] = []

    def store_engine() -> Engine:
        opened.append("store")
        return store.engine

    open_rows(store.url, store_engine).close()
    assert opened == ["store"]


def test_a_file_that_is_not_a_database_is_the_read_only_stores_error(tmp_path: Path) -> None:
    path = tmp_path / "certmgr.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StateError, match=rf"cannot read the database {path}: file is not a database"):
        open_rows(f"sqlite:///{path}", no_store)
    with pytest.raises(StateError, match=rf"cannot read the database {path}: file is not a database"):
        Store(f"sqlite:///{path}", read_only=True)
