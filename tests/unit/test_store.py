"""The store: migrations, leases, history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from certmgr.store import Store, utcnow
from certmgr.store.db import _MIGRATIONS, SCHEMA_HEAD, current_revision


def test_schema_head_constant_matches_migrations() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_heads() == [SCHEMA_HEAD]


def test_migrated_schema_matches_models(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert current_revision(store.engine) == SCHEMA_HEAD
    insp = inspect(store.engine)
    for name, table in SQLModel.metadata.tables.items():
        cols = {c["name"] for c in insp.get_columns(name)}
        assert cols == {c.name for c in table.columns}, name


def test_lease_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    slot = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "le")
    assert slot.id is not None
    now = utcnow()
    assert store.claim(slot.id, "node-a", 60, now)
    assert not store.claim(slot.id, "node-b", 60, now)
    assert store.claim(slot.id, "node-a", 60, now), "the holder may extend"
    assert store.claim(slot.id, "node-b", 60, now + timedelta(seconds=61)), "an expired lease is taken over"
    store.release(slot.id, "node-a")  # not the holder any more: no effect
    assert not store.claim(slot.id, "node-a", 60, now + timedelta(seconds=62))
    store.release(slot.id, "node-b")
    assert store.claim(slot.id, "node-a", 60, now + timedelta(seconds=62))


def test_sync_slot_updates_config_changes(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    a = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "le")
    b = store.sync_slot("mx1.example.com", "rsa", "rsa-4096", ["mx1.example.com", "m.example.com"], "le")
    assert a.id == b.id and b.key_type == "rsa-4096" and len(store.slots()) == 1


def test_lease_of_a_dead_local_process_is_taken_over(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from certmgr.runtime import owner_is_dead

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    slot = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "le")
    assert slot.id is not None
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}:{int(proc.stdout)}"
    alive = f"{socket.gethostname()}:{__import__('os').getpid()}"
    assert owner_is_dead(dead) and owner_is_dead(dead + "/deploy")
    assert not owner_is_dead(alive) and not owner_is_dead("other-host:1") and not owner_is_dead("garbage")
    assert store.claim(slot.id, dead, 600)
    assert not store.claim(slot.id, alive, 600)
    assert store.lease_owner(slot.id) == dead
    assert store.take_over(slot.id, dead, alive, 600)
    assert not store.take_over(slot.id, dead, "third:1", 600), "only from the holder named"
    assert store.lease_owner(slot.id) == alive


def test_migration_0002_keeps_existing_accounts(tmp_path: Path) -> None:
    """A database made by the first schema keeps its ACME account through the upgrade."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from certmgr.store.db import _MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO acme_account (issuer, directory, uri, key_path, contact, created_at, "
                          "updated_at) VALUES ('le', 'https://ca/dir', 'https://ca/acct/9', '/k', '[]', "
                          "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    engine.dispose()
    store = Store(url)  # upgrades to the head
    assert current_revision(store.engine) == SCHEMA_HEAD
    row = store.account("le", "https://ca/dir", "")
    assert row is not None and row.uri == "https://ca/acct/9"
    store.save_account("le", "https://ca/dir", "mx-node-2", "https://ca/acct/10", "/k2", [])
    assert store.account("le", "https://ca/dir", "mx-node-2") is not None


def test_migration_0003_keeps_versions_and_marks_imports(tmp_path: Path) -> None:
    """Versions stored under schema 0002 keep every value; imported ones are known as manual."""
    from alembic import command
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.execute(text("INSERT INTO managed_cert (id, hostname, key_alg, key_type, names, issuer, state, "
                          "attempts, last_error_permanent) VALUES (1, 'mx1', 'rsa', 'rsa-2048', '[]', 'le', "
                          "'issued', 0, 0)"))
        for vid, source in ((1, "acme"), (2, "import")):
            conn.execute(text(
                "INSERT INTO cert_version (id, managed_id, serial, names, key_type, key_alg, key_bits, not_before, "
                "not_after, sha256, issuer, source, cert_path, chain_path, fullchain_path, key_path, created_at) "
                f"VALUES ({vid}, 1, 's{vid}', '[]', 'rsa-2048', 'rsa', 2048, '2026-01-01 00:00:00', "
                f"'2026-04-01 00:00:00', 'h{vid}', 'le', '{source}', '/c', '/ch', '/f', '/k', '2026-01-01 00:00:00')"))
    engine.dispose()
    store = Store(url)
    acme, imported = store.version(1), store.version(2)
    assert acme is not None and imported is not None
    assert (acme.serial, acme.issuer, acme.issuer_type, acme.directory) == ("s1", "le", "", None)
    assert (imported.serial, imported.sha256, imported.issuer_type) == ("s2", "h2", "manual")


def test_only_the_lease_holder_records_an_issued_certificate(tmp_path: Path) -> None:
    """Making a certificate current, closing the order and logging it happen together, and only
    for the node that holds the lease: one that stalled past it changes nothing."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    slot = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "le")
    assert slot.id is not None
    now = utcnow()
    order = store.start_renewal(slot.id, "le", "node-a", "mx1.example.com", "rsa", "forced")
    assert store.claim(slot.id, "node-a", 10, now)
    assert store.claim(slot.id, "node-b", 10, now + timedelta(seconds=11)), "node-a stalled; node-b took over"
    fields = {"state": "issued", "last_result": "success"}
    assert not store.record_issued(slot.id, order, "node-a", fields, {"serial": "01"})
    assert store.slot(slot.id).state != "issued" and store.orders(slot.id)[0].state != "issued"
    assert store.events(kind="issued") == []
    assert store.record_issued(slot.id, order, "node-b", fields, {"serial": "02"})
    assert store.slot(slot.id).state == "issued" and store.orders(slot.id)[0].state == "issued"
    assert [e.detail for e in store.events(kind="issued")] == ['{"serial": "02"}']


def test_a_step_is_recorded_with_its_event_and_says_whether_the_lease_is_still_held(tmp_path: Path) -> None:
    """One ACME step is one transaction: the order's state and URL, the slot's pending order,
    the event and the lease renewal; a node whose lease was taken hears so (and stops)."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    slot = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "le")
    assert slot.id is not None
    order = store.start_renewal(slot.id, "le", "node-a", "mx1.example.com", "rsa", "forced")
    assert store.claim(slot.id, "node-a", 60)
    url = "https://ca.example/order/1"
    assert store.record_step(slot.id, order, "node-a", 60, "order_created", "mx1.example.com", "rsa",
                             {"order_url": url})
    after = store.slot(slot.id)
    assert (after.pending_order_url, after.state, after.lease_owner) == (url, "order_pending", "node-a")
    assert (store.orders(slot.id)[0].state, store.orders(slot.id)[0].order_url) == ("order_created", url)
    assert [e.kind for e in store.events()] == ["renewal_started", "order_created"]
    store.take_over(slot.id, "node-a", "node-b", 60)
    assert not store.record_step(slot.id, order, "node-a", 60, "challenge_answered", "mx1.example.com", "rsa", {})
    assert store.slot(slot.id).lease_owner == "node-b", "the lease stays with the node that took it"


def test_waiting_on_dns_is_not_a_failed_deployment(tmp_path: Path) -> None:
    from certmgr.store import CertVersion, Deployment

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "le")
    assert slot.id is not None
    v = store.add_version(CertVersion(managed_id=slot.id, serial="01", not_before=utcnow(),
                                      not_after=utcnow() + timedelta(days=90), sha256="ab" * 32, created_at=utcnow()))
    assert v.id is not None
    for result in ("waiting", "waiting", "blocked"):
        store.add_deployment(Deployment(managed_id=slot.id, version_id=v.id, target="mx1", result=result,
                                        reason="r", started_at=utcnow(), verified_at=None))
    assert store.failed_deployments([slot.id]) == {(slot.id, v.id): 1}


def test_migration_0004_keeps_old_data_and_adds_the_monitor_tables(tmp_path: Path) -> None:
    """A database at schema 0003 keeps its rows; the collector's counts and position then go in it."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import create_engine, text

    from certmgr.monitor.storage import SessionKey
    from certmgr.store.monitor import MonitorStore

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.execute(text("INSERT INTO managed_cert (id, hostname, key_alg, key_type, names, issuer, state, "
                          "attempts, last_error_permanent) VALUES (1, 'mx1', 'rsa', 'rsa-2048', '[]', 'le', "
                          "'issued', 0, 0)"))
    engine.dispose()
    store = Store(url)
    assert current_revision(store.engine) == SCHEMA_HEAD
    assert [m.hostname for m in store.slots()] == ["mx1"]
    mon = MonitorStore(store)
    assert mon.load_position("/var/log/mail.log") is None
    key = SessionKey("2026-11-30T03:00:00+00:00", "inbound", "example.org", "Anonymous", "TLSv1.3")
    mon.commit("/var/log/mail.log", {"offset": 10}, {key: 2}, 1)
    mon.commit("/var/log/mail.log", {"offset": 20}, {key: 3}, 0)
    assert [(r.key, r.sessions) for r in mon.sessions(datetime(2026, 11, 30, 3, 30, tzinfo=UTC),
                                                      datetime(2026, 11, 30, 3, 45, tzinfo=UTC))] == [(key, 5)]
    assert MonitorStore(store).load_position("/var/log/mail.log") == {"offset": 20}
    assert mon.unparsed() == {"/var/log/mail.log": 1}
    store.close()


def test_a_second_collector_that_read_the_same_lines_counts_nothing(tmp_path: Path) -> None:
    """Exactly once with two collectors at once: the position moves only from the one a run loaded,
    in the transaction of its counts; the loser's counts are not added."""
    import pytest

    from certmgr.errors import StateError
    from certmgr.monitor.storage import SessionKey
    from certmgr.store.monitor import MonitorStore

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    key = SessionKey("2026-11-30T03:00:00+00:00", "outbound", "example.org", "Verified", "TLSv1.3")
    a, b = MonitorStore(store), MonitorStore(store)
    a.commit("log", {"offset": 1}, {key: 1}, 0)
    assert a.load_position("log") == b.load_position("log") == {"offset": 1}
    a.commit("log", {"offset": 2}, {key: 1}, 0)
    with pytest.raises(StateError, match="another collector"):
        b.commit("log", {"offset": 2}, {key: 1}, 0)
    from datetime import UTC, datetime
    rows = list(a.sessions(datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)))
    assert [r.sessions for r in rows] == [2]
    store.close()
