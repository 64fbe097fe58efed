"""The store's write path at scale: durable but not synced per commit, threads of one process
queued in-process instead of in SQLite's sleeping busy handler, a certificate recorded with its
heartbeat in one transaction, and questions about every slot that fit SQLite's limits."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from certmgr.store import CertVersion, Deployment, Store, utcnow


def store_at(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'db.sqlite'}")


def version_of(slot_id: int, sha: str) -> CertVersion:
    return CertVersion(managed_id=slot_id, serial=sha[:4], not_before=utcnow(),
                       not_after=utcnow() + timedelta(days=90), sha256=sha, created_at=utcnow())


def test_sqlite_runs_in_wal_mode_synced_at_checkpoints(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL: a commit is not an fsync (see the README on durability)."""
    store = store_at(tmp_path)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_threads_of_one_process_never_see_the_database_locked(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen renewal threads writing at once queue in the process: none waits in SQLite's busy
    handler, so none fails even when that handler may not wait at all."""
    monkeypatch.setenv("CERTMGR_DB_TIMEOUT", "0")
    store = store_at(tmp_path)
    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "le")
    assert slot.id is not None
    slot_id = slot.id
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                store.record_step(slot_id, 1, "node", 60, "order_created", "mx1.example.com", "ecdsa", {"i": i})
                store.log("probe", f"mx{n}.example.com", None, {"i": i})
        except BaseException as e:  # collected: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.events()) == 16 * 40 * 2


def test_a_certificate_is_recorded_with_the_heartbeat_or_not_at_all(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "le")
    assert slot.id is not None
    now = utcnow()
    assert store.claim(slot.id, "node-a", 10, now)
    assert store.claim(slot.id, "node-b", 10, now + timedelta(seconds=11)), "node-a stalled; node-b took over"
    assert store.record_certificate(version_of(slot.id, "aa" * 32), "node-a", 60) is None
    assert store.versions(slot.id) == [], "the node that lost the lease records nothing"
    first = store.record_certificate(version_of(slot.id, "bb" * 32), "node-b", 60)
    assert first is not None and first.id is not None
    again = store.record_certificate(version_of(slot.id, "bb" * 32), "node-b", 60)
    assert again is not None and again.id == first.id, "the same certificate is recorded once"
    assert [v.id for v in store.versions(slot.id)] == [first.id]


def test_recording_the_issued_certificate_releases_the_lease(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "le")
    assert slot.id is not None
    order = store.start_renewal(slot.id, "le", "node-a", "mx1.example.com", "ecdsa", "forced")
    assert store.claim(slot.id, "node-a", 60)
    assert store.record_issued(slot.id, order, "node-a", {"state": "issued"}, {"serial": "01"})
    after = store.slot(slot.id)
    assert (after.state, after.lease_owner, after.lease_until) == ("issued", None, None)


def test_key_ready_keeps_the_csr_of_the_key(tmp_path: Path) -> None:
    """The CSR is signed once, and stored in the transaction that records its key."""
    store = store_at(tmp_path)
    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "le")
    assert slot.id is not None
    store.key_ready(slot.id, "mx1.example.com", "ecdsa", "ecdsa-p256", "/k.pem", "CSR")
    after = store.slot(slot.id)
    assert (after.pending_key_path, after.pending_csr, after.state) == ("/k.pem", "CSR", "key_ready")


def test_failed_deployments_of_more_slots_than_sqlite_binds(tmp_path: Path) -> None:
    """The daemon asks about every slot at once: more ids than SQLite's bound-parameter limit
    (32,766 by default; this build's is read from the connection) must not fail the question."""
    store = store_at(tmp_path)
    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "le")
    assert slot.id is not None
    v = store.add_version(version_of(slot.id, "cc" * 32))
    assert v.id is not None
    store.add_deployment(Deployment(managed_id=slot.id, version_id=v.id, target="mx1", result="failed",
                                    reason="r", started_at=utcnow(), verified_at=None))
    raw = store.engine.raw_connection()
    try:
        limit = raw.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
    finally:
        raw.close()
    many = [slot.id, *range(10_000_000, 10_000_000 + limit)]
    assert store.failed_deployments(many) == {(slot.id, v.id): 1}
    assert store.failed_deployments([slot.id + 1]) == {}
