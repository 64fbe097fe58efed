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
