"""Revocation through the CLI, and an ACME account the CA forgot (pebble restarted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble, running_pebble

pytestmark = pytest.mark.integration

ONE = """
[[mta]]
hostname = "mx1.example.com"
key = "ecdsa-p256"
issuer = "pebble"
"""


def test_revoke_reported_by_pebble(tmp_path: Path, pebble: Pebble) -> None:
    cli = Cli(acme_config(tmp_path, pebble, ONE))
    cli("renew")
    serial = cli.json("status", "--json")[0]["serial"]
    assert pebble.cert_status(int(serial, 16)) == "Valid"
    out = cli("revoke", "mx1.example.com", "--reason", "keyCompromise").stdout
    assert f"revoked serial {serial}" in out
    assert pebble.cert_status(int(serial, 16)) == "Revoked"
    # a revoked certificate is due for replacement at once
    assert cli.json("renew", "--json")[0]["action"] == "issued"
    assert "no unrevoked certificate" not in cli("revoke", "mx1.example.com").stdout


def test_forgotten_account_is_registered_again(tmp_path: Path) -> None:
    with running_pebble(tmp_path / "pebble") as pebble:
        cli = Cli(acme_config(tmp_path, pebble, ONE))
        cli("renew")
        first = cli.json("status", "--json")[0]["serial"]
        pebble.restart()  # pebble keeps accounts in memory: this one is gone
        cli("renew", "--force")
        second = cli.json("status", "--json")[0]["serial"]
        assert second and second != first


def test_renamed_issuer_keeps_old_certificates_and_revokes_them(tmp_path: Path, pebble: Pebble) -> None:
    """A version keeps the issuer and account that ordered it: renaming the issuer in the config
    neither relabels it nor makes revocation use another account."""
    path = acme_config(tmp_path, pebble, ONE)
    cli = Cli(path)
    cli("renew")
    row = cli.json("status", "--json")[0]
    assert row["issuer"] == "pebble"
    path.write_text(path.read_text().replace("[issuer.pebble]", "[issuer.le]").replace('issuer = "pebble"',
                                                                                        'issuer = "le"'))
    out = cli("revoke", "mx1.example.com").stdout
    assert f"revoked serial {row['serial']}" in out
    assert cli.json("status", "--json")[0]["issuer"] == "pebble", "the old certificate keeps its issuer"
    assert pebble.cert_status(int(row["serial"], 16)) == "Revoked"
    cli("renew")  # revoked: replaced by the renamed issuer, under its name
    assert cli.json("status", "--json")[0]["issuer"] == "le"


def test_revoke_when_the_issuer_is_gone_says_what_to_do(tmp_path: Path, pebble: Pebble) -> None:
    path = acme_config(tmp_path, pebble, ONE)
    cli = Cli(path)
    cli("renew")
    serial = cli.json("status", "--json")[0]["serial"]
    path.write_text(path.read_text().replace("[issuer.pebble]", "[issuer.gone]")
                    .replace(pebble.directory_url, "https://acme.invalid/dir").replace('issuer = "pebble"',
                                                                                       'issuer = "gone"'))
    err = cli("revoke", "mx1.example.com", check=2).stderr
    assert f"issuer pebble ({pebble.directory_url})" in err and "no longer in the config" in err, err
    assert "[issuer.pebble]" in err
    assert pebble.cert_status(int(serial, 16)) == "Valid"


def test_revoked_certificate_shows_revoked_until_replaced(tmp_path: Path, pebble: Pebble) -> None:
    cli = Cli(acme_config(tmp_path, pebble, ONE))
    cli("renew")
    cli("revoke", "mx1.example.com")
    row = cli.json("status", "--json")[0]
    assert row["state"] == "revoked" and row["revoked_at"], row
    assert "revoked" in cli("status").stdout
    cli("renew")
    row = cli.json("status", "--json")[0]
    assert row["state"] == "issued" and row["revoked_at"] is None, row
