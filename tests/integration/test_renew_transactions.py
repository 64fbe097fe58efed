"""One transaction per lifecycle step: a renewal against a real pebble writes the database at
most once per step (claim, order opened, key ready with its CSR, each ACME step, certificate
recorded with its heartbeat, certificate made current with the lease released).

Write transactions are counted with SQLAlchemy events: a transaction counts when it sent an
INSERT, UPDATE or DELETE before its COMMIT.  Each one is a turn at SQLite's single writer lock
(and, before WAL with synchronous=NORMAL, an fsync), which is what made 1,000 renewals slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from certmgr.config.load import load_config
from certmgr.lifecycle.renew import renew_many
from certmgr.runtime import Runtime
from tests.integration.test_crash_resume import mta_blocks, write_config
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration

CERTS = 3
#: claim, renewal_started, key_ready, five ACME steps, certificate recorded, issued
STEPS_PER_CERTIFICATE = 10


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


def count_writes(rt: Runtime) -> list[str]:
    """Append one entry per committed write transaction of ``rt``'s store."""
    committed: list[str] = []
    dirty: dict[int, list[str]] = {}

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split(None, 3)
        verb = words[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):  # the table: UPDATE t / INSERT INTO t / DELETE FROM t
            dirty.setdefault(id(conn.connection), []).append(f"{verb} {words[1] if verb == 'UPDATE' else words[2]}")

    def commit(conn: Any) -> None:
        done = dirty.pop(id(conn.connection), None)
        if done:
            committed.append(" ".join(done))

    def rollback(conn: Any) -> None:
        dirty.pop(id(conn.connection), None)

    event.listen(rt.store.engine, "before_cursor_execute", before)
    event.listen(rt.store.engine, "commit", commit)
    event.listen(rt.store.engine, "rollback", rollback)
    return committed


def test_a_renewal_writes_once_per_lifecycle_step(tmp_path: Path, pebble: Pebble) -> None:
    config = write_config(tmp_path, pebble, mta_blocks(CERTS, prefix="tx"))
    with Runtime(load_config(config)) as rt:
        # the first run registers the ACME account and creates the slots: not what is counted
        assert [o.action for o in renew_many(rt, [], force=True)] == ["issued"] * CERTS
        writes = count_writes(rt)
        assert [o.action for o in renew_many(rt, [], force=True)] == ["issued"] * CERTS
    per_certificate = len(writes) / CERTS
    assert per_certificate <= STEPS_PER_CERTIFICATE, (
        f"{per_certificate:.1f} write transactions per certificate, more than one per step:\n" + "\n".join(writes))
    alone = [w for w in writes if w == "UPDATE managed_cert"]
    assert len(alone) == CERTS, f"only the claim writes the slot alone (no separate heartbeat or release): {alone}"
