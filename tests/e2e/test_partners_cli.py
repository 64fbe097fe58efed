"""`certmgr partners` as a user runs it: [[partner]] tables against real partner MTAs
(private Postfix instances on their own 127.x addresses, port 25) and a real BIND zone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.partners import PartnerWorld, partner_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartnerWorld]:
    with partner_world(tmp_path_factory.mktemp("partners-cli"), defects=("good", "nostarttls")) as w:
        yield w


def _cli(tmp_path: Path, world: PartnerWorld, partners: str) -> Cli:
    path = tmp_path / "certmgr.toml"
    path.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"
trust = "{world.trust_file}"
resolver = "{world.named.server}"

[deploy.edge]
type = "postfix"
config_dir = "/etc/postfix"

[notify.mailops]
type = "webhook"
url = "https://hooks.example.test/certmgr"
{partners}""")
    return Cli(path)


def test_partners_json_and_exit_codes(tmp_path: Path, world: PartnerWorld) -> None:
    cli = _cli(tmp_path, world, f"""
[[partner]]
domain  = "{world.domain('good').upper()}."
require = "verify"
deploy  = ["edge"]
notify  = ["mailops"]

[[partner]]
domain  = "{world.domain('multi')}"
require = "encrypt"
""")
    good = cli("partners", "--json", world.domain("good"))
    assert good.returncode == 0
    reports = json.loads(good.stdout)
    assert [(r["domain"], r["require"], r["status"]) for r in reports] == [(world.domain("good"), "verify", "ok")]
    both = cli("partners", "--json", check=2)
    objects = json.loads(both.stdout)
    assert [(r["domain"], r["status"]) for r in objects] == [(world.domain("good"), "ok"),
                                                             (world.domain("multi"), "critical")]
    assert objects[1]["problems"] == [
        f"{world.mx('nostarttls')} ({world.mtas['nostarttls'].address}) does not offer STARTTLS: mail to "
        f"{world.domain('multi')} will be deferred under 'encrypt'"]
    table = cli("partners", check=2).stdout
    assert world.domain("multi") in table and "CRITICAL" in table


@pytest.mark.parametrize(("table", "key", "says"), [
    ('domain = "bank.example"\nrequire = "must"', "require", "must be one of encrypt, verify, secure, dane, "
                                                             "dane-only"),
    ('domain = "192.0.2.1"', "domain", ""),
    ('domain = "bank.example"\ndeploy = ["nowhere"]', "deploy", "refers to [deploy.nowhere], which is not defined"),
    ('domain = "bank.example"\nrequire = "encrypt"\nmatch = ["mx.bank.example"]', "match", "verify or secure only"),
    ('domain = "bank.example"\ncolour = "blue"', "colour", ""),
])
def test_bad_partner_tables_exit_2_naming_the_key(tmp_path: Path, world: PartnerWorld, table: str, key: str,
                                                  says: str) -> None:
    cli = _cli(tmp_path, world, f"\n[[partner]]\n{table}\n")
    r = cli("partners", check=2)
    assert "partner #1" in r.stderr and key in r.stderr and says in r.stderr, r.stderr
    assert cli("validate", check=2).stderr.split(": ", 1)[1] == r.stderr.split(": ", 1)[1]


def test_deploy_applies_the_partner_policy(tmp_path: Path, world: PartnerWorld) -> None:
    """`certmgr deploy` writes the outbound Postfix's policy map for the partners that meet their
    level, refuses the one that does not (exit 1, naming the MX), and drops a removed partner."""
    from tests.peers.postfix import PostfixPeer

    out = PostfixPeer(tmp_path / "out", hostname="out.sender.test", starttls=False)
    out.start()
    try:
        cert_dir = tmp_path / "certmgr-out"
        cert_dir.mkdir()
        partners = f"""
[[partner]]
domain = "{world.domain('good')}"
deploy = ["out"]

[[partner]]
domain = "{world.domain('multi')}"
deploy = ["out"]

[deploy.out]
type = "postfix"
config_dir = "{out.config_dir}"
cert_dir = "{cert_dir}"
manage_config = true
"""
        cli = _cli(tmp_path, world, partners)
        r = cli("deploy", "--json", check=1)
        [row] = json.loads(r.stdout)
        assert (row["target"], row["changed"], row["enforced"]) == ("out", True, [world.domain("good")])
        assert row["refused"][0].startswith(
            f"not enforcing 'verify' for {world.domain('multi')} (its current policy stays): {world.mx('nostarttls')} "
            f"({world.mtas['nostarttls'].address}) does not offer STARTTLS")
        policy = cert_dir / "tls_policy"
        assert policy.read_text().splitlines()[-1] == f"{world.domain('good')} verify match=hostname"
        assert (cert_dir / "tls_policy.db").exists()
        # the partner removed from the config leaves the map
        text = cli.config.read_text()
        cli.config.write_text(text.replace(f'[[partner]]\ndomain = "{world.domain("good")}"\ndeploy = ["out"]\n', ""))
        cli("deploy", "--json", check=1)  # multi is still refused
        assert world.domain("good") not in policy.read_text()
    finally:
        out.stop()
