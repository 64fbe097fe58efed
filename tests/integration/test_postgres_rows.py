"""The read path of `status` and `metrics` on a real PostgreSQL 15: the rows read through the
Store engine's driver connection hold what the ORM reads (times aware, in UTC), and `metrics`
and `status --json` answer from them; so do the reads of the mail TLS monitor's and the partner
watch's tables (time windows compared as ``timestamptz``)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path

import pytest

from certmgr.cli import main
from certmgr.store import Store
from certmgr.store.rows import Rows, open_rows
from tests.peers.postgres import Postgres, running_postgres
from tests.peers.testca import manual_ca_config
from tests.unit.test_practice_rows import assert_practice_rows_hold_what_the_store_reads, seed_practices
from tests.unit.test_store_rows import T0, assert_rows_hold_what_the_orm_reads, seed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


def seeded_and_read(postgres: Postgres, name: str, write: Callable[[Store], None],
                    compare: Callable[[Rows, Store], None]) -> str:
    """The URL of a new database ``name``: ``write`` seeds it through the Store, then ``compare``
    checks the read path's rows (through the Store engine's driver connection) against the store."""
    url = postgres.create_database(name)
    store = Store(url)
    try:
        write(store)
        compare(open_rows(url, lambda: store.engine), store)
    finally:
        store.close()
    return url


def test_rows_on_postgres_hold_what_the_orm_reads(postgres: Postgres, tmp_path: Path) -> None:
    url = seeded_and_read(postgres, "read_path", seed, assert_rows_hold_what_the_orm_reads)

    config = manual_ca_config(tmp_path, '\n[[mta]]\nhostname = "mx1.example.com"\nkey = "ecdsa-p256"\n'
                                        'issuer = "corp"\nnotify = ["ops"]\n', certmgr=f'database = "{url}"')
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["-c", str(config), "status", "--json"]) == 0
    (row,) = json.loads(out.getvalue())
    assert (row["serial"], row["not_after"], row["state"]) == ("0a", "2027-02-28T12:12:57Z", "verified")
    assert row["deployment"]["result"] == "failed" and row["last_probe"]["at"] == "2026-11-30T12:12:57Z"

    metrics = tmp_path / "certmgr.prom"
    assert main(["-c", str(config), "metrics", "-o", str(metrics)]) == 0
    samples = dict(line.rsplit(" ", 1) for line in metrics.read_text().splitlines() if not line.startswith("#"))
    expiry = 'certmgr_certificate_not_after_timestamp_seconds{hostname="mx1.example.com",key_type="ecdsa"}'
    assert float(samples[expiry]) == (T0 + timedelta(days=90)).timestamp(), samples
    assert float(samples['certmgr_job_last_success_timestamp_seconds{job="renew"}']) == T0.timestamp()


def test_practice_rows_on_postgres_hold_what_the_store_reads(postgres: Postgres) -> None:
    seeded_and_read(postgres, "practice_rows", seed_practices, assert_practice_rows_hold_what_the_store_reads)
