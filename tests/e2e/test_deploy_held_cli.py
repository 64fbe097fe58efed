"""A certificate whose deployment was rolled back is not deployed: while the back-off holds the
next try, `renew` says so and exits 1 (not a quiet "not due" and exit 0); naming the host tries now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_deploy_cli import HOST, Mta, config
from tests.e2e.test_deploy_cli import mta as mta
from tests.peers.pebble import Pebble

pytestmark = pytest.mark.integration


def test_renew_says_a_rolled_back_deployment_waits_and_exits_1(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    # a reload that fails: rolled back every time (a reload that does nothing would leave it to chance,
    # since a new smtpd process reads the new files whenever the idle one has exited)
    cli = config(tmp_path, pebble, mta, 'reload_command = ["false"]')
    first = cli("renew", "--json", check=1)
    assert '"rolled-back"' in first.stdout

    again = cli("renew", "--json", check=1)
    rows = [r for r in cli.json("status", "--json") if "key_type" in r]
    assert all(not r["deployed"] for r in rows), rows
    held = [o for o in json.loads(again.stdout) if o["action"] == "deploy-held"]
    assert len(held) == 1 and held[0]["hostname"] == HOST, again.stdout
    assert "next try at" in held[0]["message"] and f"certmgr renew {HOST}" in held[0]["message"]

    # naming the host tries now, despite the back-off (and is rolled back again here)
    named = cli("renew", "--json", HOST, check=1)
    assert '"rolled-back"' in named.stdout and '"deploy-held"' not in named.stdout
