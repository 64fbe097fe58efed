"""DANE rollover and MTA-STS state in the store: migration 0007 keeps old rows and imports the
JSON state files once; the keys generated ahead are recorded; two processes on one database
never both act on one MTA's step."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from certmgr.dns.dane_run import next_key_records
from certmgr.dns.rollover import Rollover
from certmgr.runtime import owner_is_dead
from certmgr.store import Store
from certmgr.store.db import _MIGRATIONS, SCHEMA_HEAD, current_revision
from certmgr.store.dns import DANE, MTA_STS, DnsStore

MX = "mx1.example.com"


def test_migration_0007_keeps_old_rows_and_imports_the_state_files_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'certmgr.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(text("INSERT INTO managed_cert (id, hostname, key_alg, key_type, names, issuer, state, "
                          "attempts, last_error_permanent) VALUES (1, 'mx1', 'rsa', 'rsa-2048', '[]', 'le', "
                          "'issued', 0, 0)"))
    engine.dispose()
    # what an earlier version left in the state directory
    rollover = Rollover(MX, ttl=300, current=("3 1 1 " + "aa" * 32,), pending=("3 1 1 " + "bb" * 32,),
                        waiting_since="2026-11-30T12:00:00+00:00")
    dane_file = tmp_path / "dane" / MX / "state.json"
    dane_file.parent.mkdir(parents=True)
    dane_file.write_text(rollover.to_json())
    sts_file = tmp_path / "mta-sts" / "example.com" / "state.json"
    sts_file.parent.mkdir(parents=True)
    sts_file.write_text(json.dumps({"policy_id": "20261130T120000", "policy_text": "p", "web_policy_text": "p"}))

    store = Store(url)
    assert current_revision(store.engine) == SCHEMA_HEAD
    assert [m.hostname for m in store.slots()] == ["mx1"]
    db = DnsStore(store, tmp_path)  # first use: the files are imported
    assert not dane_file.exists() and dane_file.with_name("state.json.imported").exists()
    assert not sts_file.exists() and sts_file.with_name("state.json.imported").exists()
    got = db.load(DANE, MX)
    assert got is not None and Rollover.from_json(got) == rollover
    assert json.loads(db.load(MTA_STS, "example.com") or "{}")["policy_id"] == "20261130T120000"
    assert db.snapshot().rollovers == {MX: rollover.to_json()}

    # once: a file appearing again later does not overwrite what the store holds since
    dane_file.write_text(Rollover(MX, ttl=60).to_json())
    assert db.import_files() == 0
    assert Rollover.from_json(db.load(DANE, MX) or "") == rollover
    store.close()


def test_keys_generated_ahead_stay_files_and_are_recorded_in_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'certmgr.db'}")
    db = DnsStore(store, tmp_path)
    (record,) = next_key_records(db, MX, ("ecdsa-p256",), fresh=False)
    row = db.next_keys(MX)["ecdsa-p256"]
    path = Path(row.path)
    assert path == tmp_path / "keys" / MX / "next-ecdsa-p256.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert record == f"3 1 1 {row.spki_sha256}"
    (again,) = next_key_records(db, MX, ("ecdsa-p256",), fresh=False)
    assert again == record  # the same key until a deployment asks for a fresh one
    (fresh,) = next_key_records(db, MX, ("ecdsa-p256",), fresh=True)
    assert fresh != record and db.next_keys(MX)["ecdsa-p256"].spki_sha256 == fresh.split()[-1]
    store.close()


def _node(url: str, state_dir: str, name: str, start: float, acted: str) -> None:
    """One node: at ``start``, take the MTA's lease and, when held, act (a line in ``acted``)
    for a second, so the other node tries while it is held."""
    store = Store(url)
    db = DnsStore(store, Path(state_dir))
    time.sleep(max(0.0, start - time.time()))
    with db.lease(DANE, MX, name, 60) as held:
        if held:
            with open(acted, "a") as f:
                f.write(name + "\n")
            db.save(DANE, MX, Rollover(MX, ttl=300, current=(f"3 1 1 {name}",)).to_json())
            time.sleep(1.0)
    store.close()


def race(url: str, tmp_path: Path) -> None:
    """Two node processes on the database ``url`` go for one MTA's step at the same moment:
    one acts, the other does nothing; the lease is free again afterwards."""
    Store(url).close()
    acted = tmp_path / "acted"
    ctx = multiprocessing.get_context("fork")
    start = time.time() + 1.0
    nodes = [ctx.Process(target=_node, args=(url, str(tmp_path), f"node-{i}", start, str(acted))) for i in (1, 2)]
    for p in nodes:
        p.start()
    for p in nodes:
        p.join(30)
        assert p.exitcode == 0
    (winner,) = acted.read_text().split()
    store = Store(url)
    db = DnsStore(store, tmp_path)
    assert Rollover.from_json(db.load(DANE, MX) or "").current == (f"3 1 1 {winner}",)
    assert db.holder(DANE, MX) is None  # released: the next step may be anyone's
    with db.lease(DANE, MX, "node-3", 60) as held:
        assert held
        with db.lease(DANE, MX, "node-4", 60) as other:
            assert not other
    store.close()


def test_two_processes_on_one_database_only_one_acts_on_a_step(tmp_path: Path) -> None:
    race(f"sqlite:///{tmp_path / 'certmgr.db'}", tmp_path)


def test_a_lease_left_by_a_dead_process_is_taken_over_at_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'certmgr.db'}")
    db = DnsStore(store, tmp_path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, gone holding the lease
        db.claim(DANE, MX, f"{socket.gethostname()}:{os.getpid()}", 600)
        os._exit(0)
    os.waitpid(pid, 0)
    dead = f"{socket.gethostname()}:{pid}"
    assert db.holder(DANE, MX) == dead
    with db.lease(DANE, MX, "someone-else-elsewhere", 60) as held:
        assert not held  # alive as far as a node of another machine can tell
    with db.lease(DANE, MX, f"{socket.gethostname()}:{os.getpid()}", 60, owner_is_dead) as held:
        assert held
    store.close()


def test_an_mta_or_domain_held_by_another_node_is_left_alone(tmp_path: Path) -> None:
    """The engines ask for the lease before anything else: while another node holds it, a
    rollover step neither looks at DNS nor publishes, a renewal issues nothing, an MTA-STS step
    deploys and publishes nothing, and nothing recorded changes."""
    from datetime import UTC, datetime

    from certmgr.dns.dane_run import DaneMta
    from certmgr.dns.mtasts import Step as StsStep
    from certmgr.dns.mtasts_run import MtaStsDomain, WebInstall
    from certmgr.dns.publisher import load_publisher
    from certmgr.dns.rollover import Step
    from certmgr.interfaces import ProviderEnv, VerifyTarget
    from tests.unit.test_config_dns import write

    write(tmp_path, "")  # the TSIG key file
    calls: list[str] = []

    def issue(hostname: str, csr: bytes, names: tuple[str, ...]) -> bytes:
        calls.append("issue")
        return b""

    class NoWeb:
        def install(self, policy_text: str, key_pem: bytes, fullchain_pem: bytes) -> WebInstall:
            calls.append("web")
            raise AssertionError("the web server must not be touched")

    # a zone on a port nobody listens on: any DNS query or update would fail the step
    publisher = load_publisher("corp", {"type": "rfc2136", "server": "127.0.0.1:9", "zone": "example.com",
                                        "tsig_key_file": str(tmp_path / "tsig.key"), "timeout": 1},
                               ProviderEnv(config_dir=tmp_path, state_dir=tmp_path), base_dir=tmp_path)
    state_dir = tmp_path / "state"
    mta = DaneMta(state_dir=state_dir, hostname=MX, publisher=publisher,
                  issue=issue, deploy=lambda r: calls.append("deploy"),
                  verify=VerifyTarget("127.0.0.1", 25), owner="node-a:1")
    recorded = Rollover(MX, ttl=300, current=("3 1 1 " + "aa" * 32,))
    mta.record(recorded)
    sts = MtaStsDomain(state_dir=state_dir, domain="example.com", publisher=publisher,
                       issue=issue, web=NoWeb(),
                       store=mta.db.store, owner="node-a:1")
    assert mta.db.claim(DANE, MX, "node-b:1", 60) and mta.db.claim(MTA_STS, "example.com", "node-b:1", 60)
    now = datetime.now(UTC)
    d = mta.step(now)
    assert d.step is Step.WAIT_VISIBLE and "another node" in d.why and d.state == recorded
    assert mta.renew(now) == recorded
    sts.renew_certificate()
    assert sts.step(now).step is StsStep.WAIT_SERVED
    assert calls == [] and not sts.certificate_file.exists()
    assert mta.load() == recorded and mta.db.holder(DANE, MX) == "node-b:1"  # its lease stays
    mta.db.store.close()
