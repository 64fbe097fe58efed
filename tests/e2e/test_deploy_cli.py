"""`certmgr renew` issues from pebble, deploys into a real private Postfix, verifies over
STARTTLS; `certmgr check` then says OK and "managed"; a deployment that is not served
is rolled back and shown in `status`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.probe.client import probe
from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble
from tests.peers.postfix import PostfixPeer, wait_until, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx2.example.com"


class Mta:
    def __init__(self, root: Path) -> None:
        self.ca = TestCA("previous CA")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        self.old = [self.ca.leaf(HOST, ("mail.example.com",), key_type=k) for k in ("rsa-2048", "ecdsa-p256")]
        files = write_chain_files(self.cert_dir, self.old)
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


def test_check_an_ipv6_target_in_brackets(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    # `check [::1]:PORT`, the form `smtp` takes in the config, probes that port over IPv6
    from tests.peers.postfix import postconf
    from tests.peers.util import free_port, wait_port

    port = free_port()
    postconf(mta.peer, "inet_protocols = all")
    with open(mta.peer.config_dir / "master.cf", "a") as f:
        f.write(f"[::1]:{port} inet n - n - - smtpd\n")
    mta.peer.reload()
    wait_port(port, host="::1")
    cli = config(tmp_path, pebble, mta)
    r = cli("check", "--json", f"[::1]:{port}", check=2)  # CRITICAL: the old CA is not trusted
    (rep,) = json.loads(r.stdout)
    assert rep["target"] == f"[::1]:{port}" and rep["starttls"] and rep["banner_host"] == HOST, rep
    assert rep["certificate"]["sha256"] in {b.sha256 for b in mta.old}, rep


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
    # the previous certificates are back in place and still served (once the reload has replaced
    # the smtpd processes started while the new files were in place: a reload does not wait for them)
    mta.peer.reload()

    def old_served() -> bool:
        return {mta.served("rsa"), mta.served("ecdsa")} == {b.sha256 for b in mta.old}

    wait_until(old_served, what="the previous certificates served again")
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


def test_dane_records_guard_the_deployment(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    """A new key that the published TLSA records do not match is not deployed (DANE senders would stop
    delivering); the old certificate stays, status says which record to publish; once it is published
    `certmgr deploy` puts the new certificate in service."""
    import json

    from cryptography import x509

    from certmgr.probe.dane import record_for
    from tests.peers.named import running_named

    cli = config(tmp_path, pebble, mta)
    with running_named(tmp_path / "named", zone="example.com") as named:
        path = cli.config
        text = path.read_text().replace(f'resolver = "{pebble.dns_server}"', f'resolver = "{named.server}"')
        path.write_text(text)
        tlsa_name = f"_25._tcp.{HOST}."
        # a TLSA record below the host makes it an empty non-terminal the wildcard no longer covers
        named.replace(f"{HOST}.", "A", ["127.0.0.1"])

        def pin(rows: list[dict[str, object]]) -> list[str]:
            certs = [x509.load_pem_x509_certificate(
                next((tmp_path / "state" / "certs" / HOST / str(r["key_type"])).glob(f"{r['serial']}/cert.pem"))
                .read_bytes()) for r in rows]
            return [str(record_for(c)) for c in certs]

        cli("renew")  # no TLSA yet: deployed as usual
        first = cli.json("status", "--json")
        named.replace(tlsa_name, "TLSA", pin(first))
        reports = cli.json("check", "--json")
        assert all(r["status"] == "ok" and r["dane"]["match"] for r in reports), reports

        # a forced renewal makes new keys, which the records do not pin
        out = json.loads(cli("renew", "--force", "--json", check=1).stdout)
        assert [o["action"] for o in out][-1] == "deploy-failed", out
        rows = cli.json("status", "--json")
        assert all(r["state"] == "deploy_blocked" and not r["deployed"] for r in rows), rows
        wanted = pin(rows)
        assert all(w in rows[0]["last_error"] or w in rows[1]["last_error"] for w in wanted)
        assert {mta.served("rsa"), mta.served("ecdsa")} == {r["sha256"] for r in first}, "old ones still served"

        # the admin publishes the next key's records beside the current ones, then deploys
        named.replace(tlsa_name, "TLSA", pin(first) + wanted)
        assert cli.json("deploy", "--json")[0]["ok"] is True
        assert {mta.served("rsa"), mta.served("ecdsa")} == {r["sha256"] for r in rows}
        # the old records can go; a wrong record alone makes check critical
        named.replace(tlsa_name, "TLSA", ["3 1 1 " + "00" * 32])
        res = cli("check", "--json", check=2)
        assert "no TLSA record at _25._tcp.mx2.example.com matches" in res.stdout


def test_revoked_and_deployed_is_not_deployed(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    """After `revoke`, status says `revoked` (not `verified`, not deployed) until the replacement
    is deployed and served."""
    cli = config(tmp_path, pebble, mta)
    cli("renew")
    revoked = {r["key_type"]: r["sha256"] for r in cli.json("status", "--json")}
    cli("revoke", HOST)
    rows = cli.json("status", "--json")
    assert all(r["state"] == "revoked" and not r["deployed"] for r in rows), rows
    assert all(mta.served(alg) == sha for alg, sha in revoked.items()), "still served: the MTA was not touched"
    out = cli.json("renew", "--json")
    assert [o["action"] for o in out] == ["issued", "issued", "deployed"], out
    rows = cli.json("status", "--json")
    assert all(r["state"] == "verified" and r["deployed"] for r in rows), rows
    assert all(mta.served(r["key_type"]) == r["sha256"] != revoked[r["key_type"]] for r in rows)


def test_certificate_replaced_behind_certmgr_is_not_called_deployed(tmp_path: Path, pebble: Pebble,
                                                                     mta: Mta) -> None:
    """A verified deployment is not the last word: when a later probe finds the MTA serving
    another certificate (the files put back by hand, say), status says so."""
    cli = config(tmp_path, pebble, mta)
    cli("renew")
    assert all(r["deployed"] for r in cli.json("status", "--json"))
    write_chain_files(mta.cert_dir, mta.old)
    mta.peer.reload()
    wait_until(lambda: all(mta.served(b.key_alg) == b.sha256 for b in mta.old), what="the old certificate served")
    cli("check", check=None)
    rows = cli.json("status", "--json")
    assert all(r["state"] == "not_served" and not r["deployed"] for r in rows), rows
    assert {r["served_sha256"] for r in rows} == {b.sha256 for b in mta.old}
    cli("deploy")  # deploying again puts it right
    rows = cli.json("status", "--json")
    assert all(r["state"] == "verified" and r["deployed"] for r in rows), rows
