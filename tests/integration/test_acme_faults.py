"""The ACME server misbehaves; certmgr keeps the old certificate, says why, and backs off.

A fault-injecting proxy (tests/peers/faultproxy.py) sits between certmgr and a real pebble:
the issuer's ``directory`` points at the proxy, which refuses connections, answers 5xx or
429 + Retry-After, and counts every request, so the tests can show that a waiting slot
does not contact the CA at all.  Also: a challenge the CA cannot validate, pebble rejecting
half of all nonces, and an ACME server whose TLS certificate is not trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certmgr.config.load import load_config
from certmgr.store import Store
from tests.peers.faultproxy import FaultProxy, running_faultproxy
from tests.peers.pebble import Pebble, running_pebble
from tests.peers.util import free_port

pytestmark = pytest.mark.integration

HOST = "mx1.example.com"
#: requests certmgr made under each fault, printed at the end of the module (`pytest -s`)
REQUEST_COUNTS: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as p:
        yield p


@pytest.fixture(scope="module")
def proxy(pebble: Pebble) -> Iterator[FaultProxy]:
    with running_faultproxy(pebble.port, cert=pebble._cert, key=pebble._key, ca=pebble.ca_bundle) as fp:
        yield fp
    if REQUEST_COUNTS:
        print("\nACME requests seen by the proxy, per fault:")
        for name, counts in REQUEST_COUNTS.items():
            print(f"  {name}: {json.dumps(counts, sort_keys=True)}")


@pytest.fixture
def healthy(proxy: FaultProxy) -> FaultProxy:
    proxy.up()
    proxy.heal()
    proxy.reset_counts()
    return proxy


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "CERTMGR_CONFIG"}
    return subprocess.run([sys.executable, "-m", "certmgr", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=180, env={**base, **(env or {})})


def ok(r: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def write_config(tmp_path: Path, directory: str, *, ca_bundle: Path | None, http_port: int,
                 hosts: list[str] | None = None) -> Path:
    bundle = f'ca_bundle = "{ca_bundle}"' if ca_bundle else ""
    mtas = "".join(f'\n[[mta]]\nhostname = "{h}"\nkey = "ecdsa-p256"\nissuer = "ca"\n'
                   for h in hosts or [HOST])
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.ca]
type = "acme"
directory = "{directory}"
{bundle}
contact = ["mailto:postmaster@example.com"]
timeout = 60
challenge = {{ type = "http-01", mode = "standalone", address = "127.0.0.1", port = {http_port} }}
{mtas}""")
    return path


def status(config: Path) -> dict[str, Any]:
    rows = json.loads(ok(run_cli(config, "status", "--json")).stdout)
    assert len(rows) == 1
    return dict(rows[0])


def when(iso: str) -> datetime:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def files_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "certmgr.db" not in p.name}


def issue_first(tmp_path: Path, pebble: Pebble, proxy: FaultProxy) -> tuple[Path, dict[str, Any]]:
    config = write_config(tmp_path, proxy.directory_url(), ca_bundle=pebble.ca_bundle,
                          http_port=pebble.http_port)
    out = json.loads(ok(run_cli(config, "renew", "--json")).stdout)
    assert [o["action"] for o in out] == ["issued"], out
    assert proxy.total() > 0, "the issuance went through the proxy"
    # the certificate enters its renewal window (as it would months later)
    store = Store(load_config(config).settings.database)
    try:
        for slot in store.slots():
            assert slot.id is not None
            store.update_slot(slot.id, renew_at=datetime.now(UTC) - timedelta(minutes=1))
    finally:
        store.close()
    row = status(config)
    assert row["serial"] and row["state"] == "issued"
    return config, row


def assert_failed_and_kept(config: Path, before: dict[str, Any], files_before: dict[str, str],
                           r: subprocess.CompletedProcess[str], phrase: str, proxy: FaultProxy) -> dict[str, Any]:
    ok(r, 1)
    out = json.loads(r.stdout)
    assert [o["action"] for o in out] == ["failed"]
    row = status(config)
    assert row["serial"] == before["serial"], "the old certificate stays current"
    assert row["sha256"] == before["sha256"] and row["not_after"] == before["not_after"]
    err = row["last_error"] or ""
    assert HOST in err and f"127.0.0.1:{proxy.port}" in err, err
    assert phrase in err.lower(), err
    assert "Traceback" not in err
    state = config.parent / "state"
    files_after = files_digest(state)
    for name, digest in files_before.items():
        assert files_after.get(name) == digest, f"{name} changed or vanished under the fault"
    assert not [p for p in state.rglob("*.tmp")], "no temp files left behind"
    return row


def assert_no_contact_while_waiting(config: Path, proxy: FaultProxy, label: str) -> None:
    """An unforced renew right after the failure leaves the CA alone, even once it is back."""
    proxy.reset_counts()
    r = ok(run_cli(config, "renew", "--json"))
    assert [o["action"] for o in json.loads(r.stdout)] == ["waiting"], r.stdout
    assert proxy.total() == 0, f"{label}: renew contacted the CA while waiting: {proxy.counts()}"
    proxy.up()
    proxy.heal()
    r = ok(run_cli(config, "renew", "--json"))
    assert [o["action"] for o in json.loads(r.stdout)] == ["waiting"], r.stdout
    assert proxy.total() == 0, f"{label}: renew contacted the healed CA while waiting: {proxy.counts()}"


def test_ca_down_keeps_old_certificate_and_backs_off(tmp_path: Path, pebble: Pebble, healthy: FaultProxy) -> None:
    config, before = issue_first(tmp_path, pebble, healthy)
    files_before = files_digest(tmp_path / "state")
    healthy.down()
    healthy.reset_counts()
    t0 = datetime.now(UTC).replace(microsecond=0)
    r = run_cli(config, "renew", "--force", "--json")
    REQUEST_COUNTS["down (connection refused)"] = healthy.counts()
    row = assert_failed_and_kept(config, before, files_before, r, "cannot connect", healthy)
    assert when(row["next_retry_at"]) >= t0 + timedelta(minutes=5) - timedelta(seconds=1), row
    assert_no_contact_while_waiting(config, healthy, "down")


@pytest.mark.parametrize("code", [500, 503])
def test_server_errors_keep_old_certificate_and_back_off(tmp_path: Path, pebble: Pebble,
                                                         healthy: FaultProxy, code: int) -> None:
    config, before = issue_first(tmp_path, pebble, healthy)
    files_before = files_digest(tmp_path / "state")
    healthy.fail(code)
    healthy.reset_counts()
    t0 = datetime.now(UTC).replace(microsecond=0)
    r = run_cli(config, "renew", "--force", "--json")
    counts = healthy.counts()
    REQUEST_COUNTS[f"HTTP {code} for every request"] = counts
    row = assert_failed_and_kept(config, before, files_before, r, str(code), healthy)
    assert 1 <= sum(counts.values()) <= 5, f"no hot loop against a failing CA: {counts}"
    assert when(row["next_retry_at"]) >= t0 + timedelta(minutes=5) - timedelta(seconds=1), row
    assert_no_contact_while_waiting(config, healthy, f"HTTP {code}")


def test_transient_server_error_then_recovers(tmp_path: Path, pebble: Pebble, healthy: FaultProxy) -> None:
    """One 503 fails this attempt; a forced retry once the CA is fine issues normally."""
    config, before = issue_first(tmp_path, pebble, healthy)
    healthy.fail(503, count=1)
    ok(run_cli(config, "renew", "--force", "--json"), 1)
    assert status(config)["serial"] == before["serial"]
    out = json.loads(ok(run_cli(config, "renew", "--force", "--json")).stdout)
    assert [o["action"] for o in out] == ["issued"]
    row = status(config)
    assert row["serial"] != before["serial"] and row["last_error"] is None and row["next_retry_at"] is None


def test_rate_limit_honours_retry_after(tmp_path: Path, pebble: Pebble, healthy: FaultProxy) -> None:
    config, before = issue_first(tmp_path, pebble, healthy)
    files_before = files_digest(tmp_path / "state")
    retry_after = 7200  # longer than the first backoff step, so it must win
    healthy.fail(429, retry_after=retry_after)
    healthy.reset_counts()
    t0 = datetime.now(UTC).replace(microsecond=0)
    r = run_cli(config, "renew", "--force", "--json")
    counts = healthy.counts()
    REQUEST_COUNTS[f"HTTP 429 Retry-After {retry_after}"] = counts
    row = assert_failed_and_kept(config, before, files_before, r, "rate limited", healthy)
    assert 1 <= sum(counts.values()) <= 5, f"no hot loop against a rate-limiting CA: {counts}"
    assert when(row["next_retry_at"]) >= t0 + timedelta(seconds=retry_after) - timedelta(seconds=1), row
    assert_no_contact_while_waiting(config, healthy, "HTTP 429")


def test_rate_limit_on_new_order_only(tmp_path: Path, pebble: Pebble, healthy: FaultProxy) -> None:
    """The directory, nonce and account work; the CA limits new orders (the usual case)."""
    config, before = issue_first(tmp_path, pebble, healthy)
    files_before = files_digest(tmp_path / "state")
    healthy.reset_counts()
    healthy.fail(429, retry_after=3600, path="/order-plz")
    t0 = datetime.now(UTC).replace(microsecond=0)
    r = run_cli(config, "renew", "--force", "--json")
    counts = healthy.counts()
    REQUEST_COUNTS["HTTP 429 Retry-After 3600 on newOrder only"] = counts
    row = assert_failed_and_kept(config, before, files_before, r, "rate limited", healthy)
    assert counts.get("/order-plz") == 1, f"the refused order is not hammered: {counts}"
    assert "creating the order" in row["last_error"]
    assert when(row["next_retry_at"]) >= t0 + timedelta(seconds=3600) - timedelta(seconds=1)
    assert_no_contact_while_waiting(config, healthy, "HTTP 429 on newOrder")


def test_challenge_not_validated_is_retried_later(tmp_path: Path, pebble: Pebble, healthy: FaultProxy) -> None:
    # the solver answers on a port pebble never checks: validation fails for real
    config = write_config(tmp_path, healthy.directory_url(), ca_bundle=pebble.ca_bundle, http_port=free_port())
    t0 = datetime.now(UTC).replace(microsecond=0)
    r = ok(run_cli(config, "renew", "--json"), 1)
    REQUEST_COUNTS["challenge not validated"] = healthy.counts()
    row = status(config)
    err = row["last_error"] or ""
    assert row["serial"] is None and row["state"] == "failed"
    assert HOST in err and "http-01" in err and "not validated" in err, err
    assert when(row["next_retry_at"]) >= t0 + timedelta(minutes=5) - timedelta(seconds=1), row
    assert "Traceback" not in r.stderr
    healthy.reset_counts()
    r = ok(run_cli(config, "renew", "--json"))
    assert [o["action"] for o in json.loads(r.stdout)] == ["waiting"]
    assert healthy.counts().get("/order-plz", 0) == 0 and healthy.total() == 0, healthy.counts()


def test_half_the_nonces_rejected_every_issuance_succeeds(tmp_path: Path) -> None:
    with running_pebble(tmp_path / "pebble", env={"PEBBLE_WFE_NONCEREJECT": "50"}) as p, \
            running_faultproxy(p.port, cert=p._cert, key=p._key, ca=p.ca_bundle) as fp:
        hosts = [f"mx{i}.example.com" for i in range(1, 11)]
        config = write_config(tmp_path, fp.directory_url(), ca_bundle=p.ca_bundle, http_port=p.http_port,
                              hosts=hosts)
        out = json.loads(ok(run_cli(config, "renew", "--json")).stdout)
        REQUEST_COUNTS["PEBBLE_WFE_NONCEREJECT=50, 10 certificates"] = {"total": fp.total()}
        assert sorted(o["hostname"] for o in out) == sorted(hosts)
        assert {o["action"] for o in out} == {"issued"}, out
        rows = json.loads(ok(run_cli(config, "status", "--json")).stdout)
        assert all(r["serial"] and r["last_error"] is None for r in rows)
        assert "badNonce" in p.log_text() or fp.total() > 10 * 8, "pebble did reject nonces"


def test_untrusted_acme_tls_certificate_is_refused(tmp_path: Path, pebble: Pebble) -> None:
    """No ca_bundle for pebble's private CA: the TLS handshake must fail, not be waved through."""
    config = write_config(tmp_path, pebble.directory_url, ca_bundle=None, http_port=pebble.http_port)
    env = {"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}
    r = ok(run_cli(config, "renew", "--json", env=env), 1)
    rows = json.loads(ok(run_cli(config, "status", "--json")).stdout)
    err = rows[0]["last_error"] or ""
    assert rows[0]["serial"] is None
    assert "TLS" in err and "certificate verify failed" in err and HOST in err, err
    assert "ca_bundle" in err, "the message says what to do"
    assert not list((tmp_path / "state").glob("certs/*/*/*/cert.pem"))
    assert "Traceback" not in r.stderr


def test_one_process_reuses_its_connection_and_nonces_across_certificates(
        tmp_path: Path, pebble: Pebble, healthy: FaultProxy) -> None:
    """Issuing several certificates in a row asks the CA for a fresh nonce once, not once per
    certificate: the connection to the CA, and the nonces it hands out, are kept for the next order."""
    hosts = [f"mx{i}.example.com" for i in range(1, 5)]
    config = write_config(tmp_path, healthy.directory_url(), ca_bundle=pebble.ca_bundle,
                          http_port=pebble.http_port, hosts=hosts)
    config.write_text(config.read_text().replace("[certmgr]\n", "[certmgr]\nconcurrency = 1\n", 1))
    out = json.loads(ok(run_cli(config, "renew", "--json")).stdout)
    assert [o["action"] for o in out] == ["issued"] * len(hosts), out
    counts = healthy.counts()
    REQUEST_COUNTS[f"{len(hosts)} certificates in one run"] = counts
    # one for the account registration, one for the first order; later orders reuse nonces
    assert counts.get("/nonce-plz", 0) <= 2, counts
