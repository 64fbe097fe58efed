"""The monitor's counts on a real PostgreSQL 15: a collect of the benchmark's generated log
adds every session once through the bulk UPDATE/INSERT, a second commit of the same keys adds
to them, and the plaintext peers land beside them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.collect_bench import generate
from certmgr.monitor.collector import collect_log
from certmgr.store.monitor import MonitorStore
from tests.peers.postgres import Postgres, running_postgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


def test_counts_add_up_on_postgres(postgres: Postgres, tmp_path: Path) -> None:
    log = tmp_path / "maillog"
    expected = generate(log, 30_000)
    store = MonitorStore.open(postgres.create_database("monitor_bulk"))
    try:
        assert collect_log(log, store, source="a").sessions == sum(expected.values())
        assert collect_log(log, store, source="b").sessions == sum(expected.values())  # same keys again
        since, until = datetime(1970, 1, 2, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)
        assert sum(r.sessions for r in store.sessions(since, until)) == 2 * sum(expected.values())
        plain = sum(n for (_, level), n in expected.items() if level == "none")
        assert sum(p.sessions for p in store.plain_peers(since, until)) == 2 * plain
    finally:
        store.close()
