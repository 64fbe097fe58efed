"""Crash safety: `certmgr renew` killed (SIGKILL) after every lifecycle step, then run again.

``CERTMGR_CRASH_AFTER=<step>`` makes the process kill itself right after the step is
recorded, as a power cut would.  The next run must finish the job: a valid certificate
for the slot, its key on disk 0600 and matching, no temporary files, and no more than
one extra ACME order per interruption.  Orders and certificates are counted on pebble's
side (its log), independently of what certmgr recorded.

The helpers at the top are shared with the other crash/race tests of this folder.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certmgr.pki.keys import load_key
from certmgr.store import ManagedCert, Store, utcnow
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration

#: a short lease so the resumed run does not wait 90 s for the dead process's claim
LEASE = 2.0
STEPS = ["key_ready", "order_created", "challenge_answered", "finalized", "order_valid",
         "certificate_downloaded", "certificate_stored", "version_added", "issued"]

# --------------------------------------------------------------------------- shared helpers


def write_config(directory: Path, pebble: Pebble, mtas: str, *, database: str | None = None,
                 webroot: Path | None = None, concurrency: int = 16) -> Path:
    """A certmgr.toml with its own state dir, issuing from ``pebble``."""
    directory.mkdir(parents=True, exist_ok=True)
    if webroot is not None:
        challenge: str | None = f'{{ type = "http-01", mode = "webroot", webroot = "{webroot}" }}'
    else:
        challenge = None
    db = f'database = "{database}"\n' if database else ""
    path = directory / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{directory / 'state'}"
concurrency = {concurrency}
{db}
{pebble.issuer_toml(challenge=challenge)}{mtas}
""")
    return path


def mta_blocks(count: int, prefix: str = "mx", key: str = "ecdsa-p256") -> str:
    return "".join(f'\n[[mta]]\nhostname = "{prefix}{i}.example.com"\nkey = "{key}"\nissuer = "pebble"\n'
                   for i in range(count))


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    drop = {"CERTMGR_CONFIG", "CERTMGR_CRASH_AFTER", "CERTMGR_LEASE_SECONDS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["CERTMGR_LEASE_SECONDS"] = str(LEASE)
    env.update(extra or {})
    return env


def certmgr_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "certmgr", "-c", str(config), *args]


def as_machine(name: str) -> list[str]:
    """A command prefix that runs certmgr under its own host name (a UTS namespace), as if on
    another machine: its own ACME account, and a dead holder's claims are left to expire."""
    problem = _uts_namespace_problem()
    if problem:
        msg = f"cannot run a process under its own host name with unshare --uts (root, or CAP_SYS_ADMIN, " \
              f"is needed): {problem}"
        if os.environ.get("CERTMGR_ALLOW_SKIP") == "1":
            pytest.skip(msg)
        pytest.fail(msg)
    return _uts_prefix(name)


def _uts_prefix(name: str) -> list[str]:
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', name]


@functools.cache
def _uts_namespace_problem() -> str:
    """Empty when ``unshare --uts`` works here (checked once per test session)."""
    probe = subprocess.run([*_uts_prefix("certmgr-probe"), "hostname"], capture_output=True, text=True)
    if probe.returncode == 0 and probe.stdout.strip() == "certmgr-probe":
        return ""
    return probe.stderr.strip() or probe.stdout.strip() or f"exit {probe.returncode}"


def run_certmgr(config: Path, *args: str, env: Mapping[str, str] | None = None,
                timeout: float = 240, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *certmgr_cmd(config, *args)], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(env), cwd=config.parent)


def popen_certmgr(config: Path, *args: str, env: Mapping[str, str] | None = None,
                  log: Path | None = None, prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
    """``certmgr`` in the background; ``prefix`` must ``exec`` it so that the pid stays the same."""
    # the child keeps its own copy of the descriptor; ours is closed right away
    out = open(log or config.parent / "certmgr.out", "a")
    try:
        return subprocess.Popen([*prefix, *certmgr_cmd(config, *args)], stdout=out, stderr=subprocess.STDOUT, text=True,
                                env=cli_env(env), cwd=config.parent)
    finally:
        out.close()


class PebbleCounter:
    """Counts what pebble logs from the moment it is made: orders created, certificates issued."""

    ORDER = re.compile(r'Added order "([^"]+)" to the db')
    ISSUED = re.compile(r"Issued certificate serial ([0-9a-f]+) for order (\S+)")

    def __init__(self, pebble: Pebble) -> None:
        self.pebble = pebble
        self.offset = len(pebble.log_text())

    def _text(self) -> str:
        return self.pebble.log_text()[self.offset:]

    def orders(self) -> list[str]:
        return self.ORDER.findall(self._text())

    def issued(self) -> list[tuple[str, str]]:
        return self.ISSUED.findall(self._text())


def store_of(config_dir: Path, url: str | None = None) -> Store:
    return Store(url or f"sqlite:///{config_dir / 'state' / 'certmgr.db'}")


def slot_named(store: Store, hostname: str) -> ManagedCert:
    return next(s for s in store.slots() if s.hostname == hostname)


def public_der(obj: Any) -> bytes:
    return bytes(obj.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


def check_state_dir(state: Path) -> None:
    """No temporary files left behind; every private key 0600."""
    leftovers = [p for p in state.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]
    assert not leftovers, f"temporary files left in the state dir: {leftovers}"
    keys = list(state.glob("keys/*/*.pem")) + list(state.glob("accounts/*.pem"))
    assert keys
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600, f"{k} is {oct(k.stat().st_mode)}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


HOST = "mx0.example.com"

def _crash_then_resume(
    tmp_path: Path, pebble: Pebble, step: str, resume_prefix: Sequence[str] = ()
) -> tuple[Path, Store, PebbleCounter, ManagedCert, int]:
    """Crash after ``step``, wait out the lease, run again; return what the tests look at,
    including the slot as the crash left it and the number of orders pebble had by then."""
    config = write_config(tmp_path, pebble, mta_blocks(1))
    counter = PebbleCounter(pebble)
    crashed = run_certmgr(config, "renew", "--json", env={"CERTMGR_CRASH_AFTER": step})
    assert crashed.returncode == -9, f"expected SIGKILL after {step}: {crashed.returncode}\n{crashed.stderr}"
    store = store_of(tmp_path)
    after_crash = slot_named(store, HOST)
    orders_at_crash = len(counter.orders())
    assert after_crash.current_version_id is None or step == "issued"
    # the dead process's claim must lapse before another process may take the slot
    time.sleep(LEASE + 0.5)
    resumed = run_certmgr(config, "renew", "--json", prefix=resume_prefix)
    assert resumed.returncode == 0, (
        f"resume after {step}: exit {resumed.returncode}\n{resumed.stdout}\n{resumed.stderr}")
    return config, store, counter, after_crash, orders_at_crash


@pytest.mark.parametrize("step", STEPS)
def test_crash_after_step_then_resume(tmp_path: Path, pebble: Pebble, step: str) -> None:
    config, store, counter, _after_crash, _ = _crash_then_resume(tmp_path, pebble, step)
    status = run_certmgr(config, "status", "--json")
    rows = json.loads(status.stdout)
    assert len(rows) == 1 and rows[0]["serial"] and rows[0]["state"] == "issued", rows

    slot = slot_named(store, HOST)
    assert slot.id is not None
    versions = store.versions(slot.id)
    assert len(versions) == 1, f"one certificate version, got {[v.serial for v in versions]}"
    version = versions[0]
    assert slot.current_version_id == version.id and version.serial == rows[0]["serial"]
    assert slot.pending_key_path is None and slot.pending_order_url is None
    # released by the resumed run, or (crash after "issued": nothing left to do) a lapsed claim
    assert slot.lease_owner is None or (slot.lease_until is not None and slot.lease_until < utcnow())

    # pebble's view: one certificate in total, at most one extra order for the interruption
    orders, issued = counter.orders(), counter.issued()
    how = "same order" if len(orders) == 1 else "new order"
    print(f"\nMATRIX crash after {step}: orders={len(orders)} certificates={len(issued)} ({how})")
    assert 1 <= len(orders) <= 2, f"{step}: {len(orders)} orders"
    assert len(issued) == 1, f"{step}: pebble issued {issued}"
    assert int(issued[0][0], 16) == int(version.serial, 16)
    assert pebble.cert_status(int(version.serial, 16)) == "Valid"

    # the key on disk is the certificate's key; it is the only key made for the slot
    cert = x509.load_pem_x509_certificate(Path(version.cert_path).read_bytes())
    assert public_der(load_key(Path(version.key_path))) == public_der(cert)
    assert [str(p) for p in (tmp_path / "state").glob("keys/*/*.pem")] == [version.key_path]
    check_state_dir(tmp_path / "state")

    # and one more run changes nothing
    again = run_certmgr(config, "renew", "--json")
    assert again.returncode == 0 and '"not-due"' in again.stdout, again.stdout
    assert len(counter.orders()) == len(orders)
    store.close()


def test_crash_at_key_ready_reuses_the_key(tmp_path: Path, pebble: Pebble) -> None:
    _config, store, counter, after_crash, orders_at_crash = _crash_then_resume(tmp_path, pebble, "key_ready")
    assert after_crash.state == "key_ready" and after_crash.pending_key_path
    pending = Path(after_crash.pending_key_path)
    pending_pub = public_der(load_key(pending))
    assert orders_at_crash == 0, "nothing was ordered before the crash"
    slot = slot_named(store, HOST)
    version = store.version(slot.current_version_id)
    assert version is not None
    assert version.key_path == str(pending), "the resumed run certifies the key made before the crash"
    cert = x509.load_pem_x509_certificate(Path(version.cert_path).read_bytes())
    assert public_der(cert) == pending_pub
    assert len(counter.orders()) == 1
    store.close()


def test_crash_after_order_created_resumes_the_order(tmp_path: Path, pebble: Pebble) -> None:
    _config, store, counter, after_crash, orders_at_crash = _crash_then_resume(tmp_path, pebble, "order_created")
    assert after_crash.state == "order_pending" and after_crash.pending_order_url
    assert orders_at_crash == 1
    slot = slot_named(store, HOST)
    version = store.version(slot.current_version_id)
    assert version is not None
    assert version.order_url == after_crash.pending_order_url, "the same ACME order was finished"
    assert len(counter.orders()) == 1, "no second new-order for a usable order"
    order_id = after_crash.pending_order_url.rstrip("/").rsplit("/", 1)[-1]
    assert counter.issued() == [(counter.issued()[0][0], order_id)]
    # the events tell the story: created once, then answered, finalized, issued by the resumed run
    kinds = [e.kind for e in store.events(HOST)]
    assert kinds.count("order_created") == 1 and kinds.count("issued") == 1, kinds
    assert kinds.count("renewal_started") == 2, kinds
    store.close()


def test_certificate_recorded_before_a_crash_is_adopted_by_another_machine(tmp_path: Path, pebble: Pebble) -> None:
    """A node dies after recording its certificate but before making it current; the node that
    takes over (another machine, another ACME account: the order is not its to resume) adopts
    that certificate instead of ordering a second one."""
    _config, store, counter, after_crash, orders_at_crash = _crash_then_resume(
        tmp_path, pebble, "version_added", resume_prefix=as_machine("other-node"))
    assert after_crash.pending_order_url and orders_at_crash == 1
    slot = slot_named(store, HOST)
    assert slot.id is not None
    versions = store.versions(slot.id)
    assert [v.id for v in versions] == [slot.current_version_id], [v.serial for v in versions]
    assert versions[0].order_url == after_crash.pending_order_url
    assert len(counter.orders()) == 1 and len(counter.issued()) == 1, "nothing ordered by the taking node"
    assert slot.pending_order_url is None and slot.pending_key_path is None
    kinds = [e.kind for e in store.events(HOST)]
    assert kinds.count("renewal_started") == 2 and kinds.count("issued") == 1, kinds
    store.close()
