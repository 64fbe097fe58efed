"""The store on a real PostgreSQL 15, and clear errors when the database cannot be used.

PostgreSQL: migrations (also with several processes starting at once on an empty
database), leases, the CLI's renew/status flows and a resumed crash.  Errors: a stopped
server, and a read-only SQLite file, end the command with a message that names the
database and no traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from certmgr.store import Store, utcnow
from certmgr.store.db import SCHEMA_HEAD
from tests.integration.test_crash_resume import (
    LEASE,
    PebbleCounter,
    check_state_dir,
    mta_blocks,
    popen_certmgr,
    run_certmgr,
    write_config,
)
from tests.peers.pebble import Pebble, running_pebble
from tests.peers.postgres import Postgres, running_postgres

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


def test_store_migrates_and_leases_on_postgres(postgres: Postgres) -> None:
    url = postgres.create_database("store_api")
    store = Store(url)
    assert postgres.psql("SELECT version_num FROM alembic_version", "store_api") == SCHEMA_HEAD
    Store(url).close()  # a second open finds the schema current and changes nothing
    assert postgres.psql("SELECT count(*) FROM alembic_version", "store_api") == "1"

    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "pebble")
    again = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "pebble")
    assert slot.id is not None and again.id == slot.id and len(store.slots()) == 1

    # a lease: exclusive while it lasts, extended by its owner, free once lapsed or released
    now = utcnow()
    assert store.claim(slot.id, "node-a", 60, now=now)
    assert not store.claim(slot.id, "node-b", 60, now=now + timedelta(seconds=30))
    assert store.claim(slot.id, "node-a", 60, now=now + timedelta(seconds=30)), "the owner extends it"
    assert not store.claim(slot.id, "node-b", 60, now=now + timedelta(seconds=80))
    assert store.claim(slot.id, "node-b", 60, now=now + timedelta(seconds=91)), "lapsed: another node takes it"
    store.release(slot.id, "node-a")  # not the owner any more: no effect
    assert store.slot(slot.id).lease_owner == "node-b"
    store.release(slot.id, "node-b")
    assert store.slot(slot.id).lease_owner is None

    # one node saving its account twice keeps one row; another node has its own
    store.save_account("pebble", "https://ca/dir", "n1", "https://ca/acct/1", "/k1", ["mailto:a@example.com"])
    store.save_account("pebble", "https://ca/dir", "n1", "https://ca/acct/2", "/k2", ["mailto:a@example.com"])
    store.save_account("pebble", "https://ca/dir", "n2", "https://ca/acct/3", "/k3", [])
    account = store.account("pebble", "https://ca/dir", "n1")
    assert account is not None and account.uri == "https://ca/acct/2"
    other = store.account("pebble", "https://ca/dir", "n2")
    assert other is not None and other.key_path == "/k3"
    store.log("test_event", "mx1.example.com", "ecdsa", {"k": "v"})
    assert [e.kind for e in store.events("mx1.example.com")] == ["test_event"]
    store.close()


def test_cli_renew_status_and_crash_resume_on_postgres(tmp_path: Path, postgres: Postgres,
                                                        pebble: Pebble) -> None:
    url = postgres.create_database("cli_flows")
    config = write_config(tmp_path, pebble, mta_blocks(2), database=url)
    counter = PebbleCounter(pebble)
    crashed = run_certmgr(config, "renew", "mx0.example.com", env={"CERTMGR_CRASH_AFTER": "finalized"})
    assert crashed.returncode == -9, crashed.stderr
    rows = json.loads(run_certmgr(config, "status", "--json").stdout)
    assert [r["state"] for r in rows] == ["order_pending", "planned"], rows
    time.sleep(LEASE + 0.5)  # the dead process's claim lapses first
    out = run_certmgr(config, "renew", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(o["action"] for o in json.loads(out.stdout)) == ["issued", "issued"]
    rows = json.loads(run_certmgr(config, "status", "--json").stdout)
    assert all(r["serial"] and r["state"] == "issued" for r in rows), rows
    assert len(counter.orders()) == 2 and len(counter.issued()) == 2, "the interrupted order was resumed"
    again = run_certmgr(config, "renew", "--json")
    assert {o["action"] for o in json.loads(again.stdout)} == {"not-due"}
    assert postgres.psql("SELECT count(*) FROM cert_version", "cli_flows") == "2"
    assert not (tmp_path / "state" / "certmgr.db").exists(), "nothing went to a local SQLite file"
    check_state_dir(tmp_path / "state")


def test_five_processes_start_at_once_on_an_empty_database(tmp_path: Path, postgres: Postgres,
                                                           pebble: Pebble) -> None:
    url = postgres.create_database("empty_race")
    config = write_config(tmp_path, pebble, mta_blocks(6), database=url)
    logs = [tmp_path / f"dry-run-{i}.out" for i in range(5)]
    # `renew --dry-run` migrates and writes the inventory (`status` only reads): five writers race
    procs = [popen_certmgr(config, "renew", "--dry-run", "--json", log=log) for log in logs]
    codes = [p.wait(120) for p in procs]
    assert codes == [0] * 5, [log.read_text()[-2000:] for log in logs]
    for log in logs:
        assert len(json.loads(log.read_text())) == 6 and "Traceback" not in log.read_text()
    assert postgres.psql("SELECT string_agg(version_num, ',') FROM alembic_version", "empty_race") == SCHEMA_HEAD
    assert postgres.psql("SELECT count(*) FROM managed_cert", "empty_race") == "6"


def _assert_clear_failure(r: subprocess.CompletedProcess[str], names: str) -> None:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    assert names in r.stderr, r.stderr


def test_stopped_postgres_is_a_clear_error(tmp_path: Path, pebble: Pebble) -> None:
    with running_postgres() as pg:
        url = pg.create_database("gone")
        config = write_config(tmp_path, pebble, mta_blocks(1), database=url)
        assert run_certmgr(config, "status").returncode == 0
        pg.stop()
        where = f"127.0.0.1:{pg.port}/gone"
        for args in (("status",), ("renew",), ("renew", "--json")):
            r = run_certmgr(config, *args, timeout=120)
            _assert_clear_failure(r, where)
            assert "cannot open the database" in r.stderr and "reachable" in r.stderr


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[list[Path]]:
    """Files made immutable with chattr (root writes through a 0444 mode); undone afterwards."""
    if shutil.which("chattr") is None:
        pytest.fail("chattr (e2fsprogs) is needed to make a file read-only for root")
    files: list[Path] = []
    yield files
    for f in files:
        subprocess.run(["chattr", "-i", str(f)], check=False)


def test_read_only_sqlite_database_is_a_clear_error(tmp_path: Path, pebble: Pebble,
                                                    immutable: list[Path]) -> None:
    config = write_config(tmp_path, pebble, mta_blocks(1))
    assert run_certmgr(config, "status").returncode == 0
    db = tmp_path / "state" / "certmgr.db"
    for extra in (tmp_path / "state").glob("certmgr.db-*"):
        extra.unlink()
    r = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot make {db} immutable ({r.stderr.strip()}); run the tests on ext4/xfs as root")
    immutable.append(db)
    # a second MTA: status only reads (it shows the new slots as planned), renew must write
    config.write_text(config.read_text() + mta_blocks(2, prefix="mxro"))
    shown = run_certmgr(config, "status")
    assert shown.returncode == 0 and "mxro1.example.com" in shown.stdout, shown.stdout + shown.stderr
    _assert_clear_failure(run_certmgr(config, "renew", "--json"), str(db))
    assert "readonly" in run_certmgr(config, "renew", "--json").stderr
