"""`certmgr renew` brings the partners' TLS policy in line with the config, like `certmgr deploy`:
a partner added reaches the real outbound Postfix's policy map on the next renew run, one whose
MX fails the level is refused (the map stays byte for byte), and a removed one leaves the map."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.partners import PartnerWorld, partner_world
from tests.peers.postfix import PostfixPeer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    with partner_world(tmp_path_factory.mktemp("partners-renew"), defects=("good", "nostarttls")) as w:
        yield w


def _partner(domain: str) -> str:
    return f'\n[[partner]]\ndomain = "{domain}"\ndeploy = ["out"]\n'


def test_renew_applies_partner_changes(tmp_path: Path, world: PartnerWorld) -> None:
    out = PostfixPeer(tmp_path / "out", hostname="out.sender.test", starttls=False)
    out.start()
    try:
        cert_dir = tmp_path / "certmgr-out"
        cert_dir.mkdir()
        config = tmp_path / "certmgr.toml"
        base = world.outbound_config(tmp_path / "state", out.config_dir, cert_dir)
        cli = Cli(config)
        policy = cert_dir / "tls_policy"
        good, multi = world.domain("good"), world.domain("multi")

        config.write_text(base + _partner(good))
        [row] = json.loads(cli("renew", "--json").stdout)
        assert (row["hostname"], row["target"], row["changed"], row["enforced"]) == ("partners", "out", True, [good])
        assert policy.read_text().splitlines()[-1] == f"{good} verify match=hostname"
        used = subprocess.run(["postconf", "-c", str(out.config_dir), "-h", "smtp_tls_policy_maps"],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert used == f"hash:{policy}"
        before = policy.read_bytes()

        # a partner whose second MX has no STARTTLS: refused, exit 1, the map untouched
        config.write_text(base + _partner(good) + _partner(multi))
        r = cli("renew", check=1)
        assert "refused" in r.stdout and multi in r.stdout
        [row] = json.loads(cli("renew", "--json", check=1).stdout)
        assert row["refused"] == [
            f"not enforcing 'verify' for {multi} (its current policy stays): {world.mx('nostarttls')} "
            f"({world.mtas['nostarttls'].address}) does not offer STARTTLS: mail to {multi} will be deferred "
            "under 'verify' — wait for the partner to fix it, lower `require`, or set `force = true`"]
        assert policy.read_bytes() == before

        # the partner removed from the config leaves the map at the next renew
        config.write_text(base)
        [row] = json.loads(cli("renew", "--json").stdout)
        assert (row["changed"], row["enforced"]) == (True, [])
        assert good not in policy.read_text()
        # a renew limited to named hosts, or a dry run, leaves the partners alone
        config.write_text(base + _partner(good))
        assert json.loads(cli("renew", "--json", "--dry-run").stdout) == []
        assert good not in policy.read_text()
    finally:
        out.stop()
