"""`certmgr renew` issues from pebble, deploys into a real private Postfix, verifies over
STARTTLS; `certmgr check` then says OK and "managed"; a deployment that is not served
is rolled back and shown in `status`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.probe import probe
from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble
from tests.peers.postfix import PostfixPeer, chain_file_pem
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx2.example.com"


class Mta:
    def __init__(self, root: Path) -> None:
        self.ca = TestCA("previous CA")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        self.old = [self.ca.leaf(HOST, ("mail.example.com",), key_type=k) for k in ("rsa-2048", "ecdsa-p256")]
        files = []
        for b in self.old:
            f = self.cert_dir / f"{HOST}.{b.key_alg}.pem"
            f.write_bytes(chain_file_pem(b))
            f.chmod(0o600)
            files.append(f)
        self.peer = PostfixPeer(root / "postfix", hostname=HOST, chain_files=files)

    def served(self, alg: str) -> str | None:
        r = probe("127.0.0.1", self.peer.port, servername=HOST, key_alg=alg, timeout=5)
        return r.certificate.sha256 if r.certificate else None


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[Mta]:
    m = Mta(tmp_path)
    m.peer.start()
    yield m
    m.peer.stop()


def config(tmp_path: Path, pebble: Pebble, mta: Mta, deploy_extra: str = "") -> Cli:
    trust = tmp_path / "trust.pem"
    trust.write_bytes(pebble.root_pem())
    extra = f"""
[deploy.edge]
type = "postfix"
config_dir = "{mta.peer.config_dir}"
cert_dir = "{mta.cert_dir}"
{deploy_extra}
"""
    mtas = f"""
[[mta]]
hostname = "{HOST}"
names = ["mail.example.com"]
key = ["rsa-2048", "ecdsa-p256"]
issuer = "pebble"
deploy = ["edge"]
smtp = "127.0.0.1:{mta.peer.port}"
"""
    path = acme_config(tmp_path, pebble, mtas, extra)
    path.write_text(path.read_text().replace("[certmgr]\n", f'[certmgr]\ntrust = "{trust}"\n'))
    return Cli(path)


def test_renew_deploys_and_check_says_ok(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    cli = config(tmp_path, pebble, mta)
    out = cli.json("renew", "--json")
    assert [o["action"] for o in out] == ["issued", "issued", "deployed"], out
    rows = cli.json("status", "--json")
    assert all(r["deployed"] and r["state"] == "verified" for r in rows), rows
    for r in rows:
        assert mta.served(r["key_type"]) == r["sha256"], "the MTA serves what certmgr issued"

    reports = cli.json("check", "--json")
    assert len(reports) == 2 and {r["key_alg"] for r in reports} == {"rsa", "ecdsa"}
    for rep in reports:
        assert rep["status"] == "ok", rep["problems"]
        assert rep["dns"] == {"hostname": HOST, "addresses": ["127.0.0.1"], "resolves": True}
        assert rep["starttls"] and rep["banner_host"] == HOST and rep["banner_match"]
        assert rep["matches_managed"] is True
        assert rep["certificate"]["chain_valid"] and rep["certificate"]["name_match"]
    assert cli("check").returncode == 0
    assert all(r["last_probe"]["status"] == "ok" for r in cli.json("status", "--json"))

    # `deploy` re-deploys the current certificates and verifies again
    again = cli.json("deploy", "--json")
    assert [r["ok"] for r in again] == [True]


def test_not_served_is_rolled_back(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    # a reload that does nothing: Postfix keeps serving the old certificates
    cli = config(tmp_path, pebble, mta, 'reload_command = ["true"]')
    r = cli("renew", "--json", check=1)
    assert '"rolled-back"' in r.stdout
    rows = cli.json("status", "--json")
    assert all(not row["deployed"] and row["state"] == "rolled_back" for row in rows)
    assert all(row["deployment"]["result"] == "rolled_back" for row in rows)
    assert "still serves" in rows[0]["last_error"]
    # the previous certificates are back in place and still served
    mta.peer.reload()
    assert {mta.served("rsa"), mta.served("ecdsa")} == {b.sha256 for b in mta.old}
    # check (exit 2, critical): the served certificate is not the managed one, its chain untrusted
    res = cli("check", "--json", check=2)
    assert "not the one certmgr deployed" in res.stdout


def test_check_says_when_dns_is_off(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    """Certificate, banner and DNS must agree: a name that does not resolve is a warning, said plainly."""
    from tests.peers.named import running_named

    cli = config(tmp_path, pebble, mta)
    cli("renew")
    with running_named(tmp_path / "named") as named:  # authoritative for example.test only
        path = cli.config
        path.write_text(path.read_text().replace(f'resolver = "{pebble.dns_server}"',
                                                 f'resolver = "{named.server}"'))
        r = cli("check", "--json", check=1)
    import json

    reports = json.loads(r.stdout)
    for rep in reports:
        assert rep["status"] == "warning" and rep["dns"]["resolves"] is False
        assert any(HOST in p and ("DNS" in p or "name server" in p) for p in rep["problems"]), rep["problems"]
