"""`certmgr renew` end to end against a real pebble with real HTTP-01 validation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble

pytestmark = pytest.mark.integration

MTAS = """
[[mta]]
hostname = "mx1.example.com"
key = "rsa-2048"
issuer = "pebble"

[[mta]]
hostname = "mx2.example.com"
names = ["mail.example.com"]
key = ["rsa-2048", "ecdsa-p256"]
issuer = "pebble"
"""


def test_renew_issues_then_is_idempotent(tmp_path: Path, pebble: Pebble) -> None:
    cli = Cli(acme_config(tmp_path, pebble, MTAS))
    before = cli.json("status", "--json")
    assert len(before) == 3 and all(r["serial"] is None for r in before)

    out = cli.json("renew", "--json")
    assert sorted((o["hostname"], o["key_alg"], o["action"]) for o in out) == [
        ("mx1.example.com", "rsa", "issued"), ("mx2.example.com", "ecdsa", "issued"),
        ("mx2.example.com", "rsa", "issued")]

    rows = {(r["hostname"], r["key_type"]): r for r in cli.json("status", "--json")}
    assert set(rows) == {("mx1.example.com", "rsa"), ("mx2.example.com", "rsa"), ("mx2.example.com", "ecdsa")}
    for (_host, alg), r in rows.items():
        assert r["serial"] and r["state"] == "issued" and r["days_left"] >= 1 and r["last_error"] is None
        assert r["key_bits"] == (2048 if alg == "rsa" else 256)
        assert r["renew_at"] < r["not_after"]
    assert rows[("mx2.example.com", "ecdsa")]["names"] == ["mx2.example.com", "mail.example.com"]

    # what pebble signed: CN = hostname, SAN = hostname + names, the key certmgr made
    state = tmp_path / "state"
    for (host, alg), r in rows.items():
        pem = next(state.glob(f"certs/{host}/{alg}/{r['serial']}/cert.pem")).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == host
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(sans.get_values_for_type(x509.DNSName)) == set(r["names"])
        chain = next(state.glob(f"certs/{host}/{alg}/{r['serial']}/chain.pem")).read_bytes()
        assert b"BEGIN CERTIFICATE" in chain, "the chain is stored"

    # private keys: 0600 files in 0700 directories
    keys = list(state.glob("keys/*/*.pem"))
    assert len(keys) == 3
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600
        assert stat.S_IMODE(k.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700

    # again: nothing is due, nothing is issued
    again = cli.json("renew", "--json")
    assert {o["action"] for o in again} == {"not-due"}
    assert {r["serial"] for r in cli.json("status", "--json")} == {r["serial"] for r in rows.values()}

    # --force renews everything; the old versions stay as history
    forced = cli.json("renew", "--force", "--json")
    assert {o["action"] for o in forced} == {"issued"}
    after = cli.json("status", "--json")
    assert not {r["serial"] for r in after} & {r["serial"] for r in rows.values()}
    assert len(list(state.glob("certs/*/*/*/cert.pem"))) == 6

    # naming a host limits the run to it and renews it only if due: nothing is ordered
    stored = len(list(state.glob("certs/*/*/*/cert.pem")))
    r = cli("renew", "mx1.example.com")
    named = cli.json("renew", "mx1.example.com", "--json")
    assert [(o["hostname"], o["action"]) for o in named] == [("mx1.example.com", "not-due")]
    assert "not due until" in named[0]["message"] and "--force" in named[0]["message"]
    assert "not due until" in r.stdout
    assert len(list(state.glob("certs/*/*/*/cert.pem"))) == stored
    # --force with a host renews that host alone
    forced_one = cli.json("renew", "--force", "mx1.example.com", "--json")
    assert [(o["hostname"], o["action"]) for o in forced_one] == [("mx1.example.com", "issued")]


def test_dry_run_changes_nothing(tmp_path: Path, pebble: Pebble) -> None:
    cli = Cli(acme_config(tmp_path, pebble, MTAS))
    out = cli.json("renew", "--dry-run", "--json")
    assert {o["action"] for o in out} == {"would-renew"}
    assert all(r["serial"] is None for r in cli.json("status", "--json"))
    assert not list((tmp_path / "state").glob("keys/*/*.pem"))


def test_unknown_host_is_usage_error(tmp_path: Path, pebble: Pebble) -> None:
    cli = Cli(acme_config(tmp_path, pebble, MTAS))
    r = cli("renew", "mx9.example.com", check=2)
    assert "mx9.example.com is not a configured MTA" in r.stderr


def test_failed_renewal_exit_1_and_recorded(tmp_path: Path, pebble: Pebble) -> None:
    # the CA validates HTTP-01 on pebble.http_port; listen elsewhere so validation fails
    path = acme_config(tmp_path, pebble, MTAS.split("[[mta]]")[0] + "[[mta]]" + MTAS.split("[[mta]]")[1])
    path.write_text(path.read_text().replace(f"port = {pebble.http_port}", "port = 1"))
    cli = Cli(path)
    r = cli("renew", "--json", check=1)
    rows = cli.json("status", "--json")
    assert rows[0]["state"] == "failed" and rows[0]["last_error"] and rows[0]["serial"] is None
    assert rows[0]["next_retry_at"] is not None
    assert "mx1.example.com" in rows[0]["last_error"], r.stdout


def test_crashed_run_does_not_block_the_next(tmp_path: Path, pebble: Pebble) -> None:
    """A `renew` killed mid-order holds a 90 s lease; the next run on this machine sees that the
    holder is gone and resumes at once instead of reporting busy."""
    import os
    import subprocess
    import sys

    cli = Cli(acme_config(tmp_path, pebble, MTAS.split("[[mta]]")[0] + "[[mta]]" + MTAS.split("[[mta]]")[1]))
    env = {**os.environ, "CERTMGR_CRASH_AFTER": "order_created"}
    env.pop("CERTMGR_LEASE_SECONDS", None)
    r = subprocess.run([sys.executable, "-m", "certmgr", "-c", str(cli.config), "renew"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -9
    out = cli.json("renew", "--json")
    assert [o["action"] for o in out] == ["issued"], out


def test_status_readable_at_80_columns(tmp_path: Path, pebble: Pebble) -> None:
    long_host = "mailgateway-02.eu-west.example.com"
    mtas = MTAS + f"""
[[mta]]
hostname = "{long_host}"
key = ["rsa-2048", "ecdsa-p256"]
issuer = "pebble"
"""
    cli = Cli(acme_config(tmp_path, pebble, mtas))
    cli("renew")
    rows = cli.json("status", "--json")
    shown = cli.on_terminal("status", columns=80)
    assert "…" not in shown, shown
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    for r in rows:
        assert r["hostname"] in shown and r["serial"] in shown, shown
    assert shown.count("issued") >= len(rows), shown
    # a wide terminal still gets the table
    wide = cli.on_terminal("status", columns=200)
    assert "…" not in wide and "renew at" in wide, wide
