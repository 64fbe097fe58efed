"""Two [[mta]] tables, one Postfix: ``mx`` on one port and ``submit`` on a second smtpd of the
same instance, sharing one [deploy.X].  Issued by pebble, deployed as one unit through
``tls_server_sni_maps``, verified for each hostname with SNI and for the default (the
primary's certificate) without; a failed reload rolls both back and leaves main.cf as it was,
byte for byte, mode and owner, naming only files that exist."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from certmgr.probe.client import probe
from tests.e2e.conftest import Cli, acme_config
from tests.peers.pebble import Pebble
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
MX, SUBMIT = "mx.example.com", "submit.example.com"


class Mta:
    """A Postfix with smtpd on two ports, serving an old certificate of a private CA for mx."""

    def __init__(self, root: Path) -> None:
        self.ca = TestCA("previous CA")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        self.old = self.ca.leaf(MX, key_type="ecdsa-p256")
        files = write_chain_files(self.cert_dir, [self.old])
        self.peer = PostfixPeer(root / "postfix", hostname=MX, chain_files=files, extra_ports=1)
        self.main_cf = self.peer.config_dir / "main.cf"

    @property
    def mx_port(self) -> int:
        return self.peer.ports[0]

    @property
    def submit_port(self) -> int:
        return self.peer.ports[1]

    def served(self, port: int, servername: str, alg: str | None = None) -> str | None:
        """SHA-256 of the leaf served on ``port`` for SNI ``servername`` ("" sends none)."""
        r = probe("127.0.0.1", port, servername=servername, key_alg=alg, timeout=5)
        return r.certificate.sha256 if r.certificate else None

    def referenced(self) -> list[Path]:
        """Every file main.cf names for TLS (the SNI map's compiled .db included)."""
        out = subprocess.run(["postconf", "-c", str(self.peer.config_dir), "-h", "smtpd_tls_chain_files",
                              "tls_server_sni_maps"], capture_output=True, text=True, check=True).stdout
        chain, _, sni = out.partition("\n")
        files = [Path(f) for f in chain.replace(",", " ").split()]
        if sni.strip():
            files.append(Path(sni.strip().partition(":")[2] + ".db"))
        return files


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[Mta]:
    m = Mta(tmp_path)
    m.peer.start()
    # main.cf as a Debian admin has it: readable by everyone (local sendmail reads it), group postfix
    os.chown(m.main_cf, 0, grp.getgrnam("postfix").gr_gid)
    m.main_cf.chmod(0o644)
    yield m
    m.peer.stop()


def config(tmp_path: Path, pebble: Pebble, mta: Mta, *, concurrency: int = 16, deploy_extra: str = "") -> Cli:
    trust = tmp_path / "trust.pem"
    trust.write_bytes(pebble.root_pem())
    extra = f"""
[deploy.edge]
type = "postfix"
config_dir = "{mta.peer.config_dir}"
cert_dir = "{mta.cert_dir}"
manage_config = true
{deploy_extra}
"""
    mtas = f"""
[[mta]]
hostname = "{MX}"
names = ["mail.example.com"]
key = ["rsa-2048", "ecdsa-p256"]
issuer = "pebble"
deploy = ["edge"]
smtp = "127.0.0.1:{mta.mx_port}"

[[mta]]
hostname = "{SUBMIT}"
key = "ecdsa-p256"
issuer = "pebble"
deploy = ["edge"]
smtp = "127.0.0.1:{mta.submit_port}"
"""
    path = acme_config(tmp_path, pebble, mtas, extra)
    path.write_text(path.read_text().replace(
        "[certmgr]\n", f'[certmgr]\ntrust = "{trust}"\nconcurrency = {concurrency}\n'))
    return Cli(path)


def sha(rows: list[dict[str, object]], host: str, alg: str) -> str:
    return str(next(r["sha256"] for r in rows if r["hostname"] == host and r["key_type"] == alg))


@pytest.mark.parametrize("concurrency", [1, 16])
def test_two_hostnames_one_postfix_served_by_sni(tmp_path: Path, pebble: Pebble, mta: Mta,
                                                 concurrency: int) -> None:
    cli = config(tmp_path, pebble, mta, concurrency=concurrency)
    out = cli.json("renew", "--json")
    assert sorted(o["action"] for o in out) == ["deployed", "deployed", "issued", "issued", "issued"], out
    rows = cli.json("status", "--json")
    assert len(rows) == 3 and all(r["deployed"] and r["state"] == "verified" for r in rows), rows
    mx_rsa, mx_ec, sub_ec = sha(rows, MX, "rsa"), sha(rows, MX, "ecdsa"), sha(rows, SUBMIT, "ecdsa")
    for port in mta.peer.ports:
        # each hostname by SNI, on either port (one instance), each algorithm of the dual one
        assert mta.served(port, MX, "rsa") == mx_rsa
        assert mta.served(port, MX, "ecdsa") == mx_ec
        assert mta.served(port, "mail.example.com", "ecdsa") == mx_ec, "a SAN selects its certificate"
        assert mta.served(port, SUBMIT) == sub_ec
        # no SNI (most SMTP senders): the primary's certificate, the first [[mta]] listing the target
        assert mta.served(port, "", "ecdsa") == mx_ec
    assert all(f.exists() for f in mta.referenced())
    assert stat.S_IMODE((mta.cert_dir / "sni.db").stat().st_mode) == 0o600, "the map holds the keys"

    # `deploy` of one of them deploys the unit, reporting every MTA of it
    again = cli.json("deploy", SUBMIT, "--json")
    assert sorted((r["hostname"], r["ok"]) for r in again) == [(MX, True), (SUBMIT, True)], again


def test_primary_is_the_default_certificate(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    cli = config(tmp_path, pebble, mta, deploy_extra=f'primary = "{SUBMIT}"')
    cli("renew")
    rows = cli.json("status", "--json")
    assert all(r["state"] == "verified" for r in rows), rows
    assert mta.served(mta.mx_port, "", "ecdsa") == sha(rows, SUBMIT, "ecdsa")
    assert mta.served(mta.mx_port, MX, "ecdsa") == sha(rows, MX, "ecdsa")


def test_failed_reload_rolls_back_both_and_keeps_main_cf(tmp_path: Path, pebble: Pebble, mta: Mta) -> None:
    cli = config(tmp_path, pebble, mta)
    cli("renew")
    first = cli.json("status", "--json")
    before = mta.main_cf.read_bytes(), mta.main_cf.stat()
    sni_before = (mta.cert_dir / "sni.db").read_bytes()

    path = cli.config
    failing = 'manage_config = true\nreload_command = ["false"]'
    path.write_text(path.read_text().replace("manage_config = true", failing))
    r = cli("renew", "--force", "--json", check=1)
    assert r.stdout.count('"rolled-back"') == 2, r.stdout
    rows = cli.json("status", "--json")
    assert all(row["state"] == "rolled_back" and not row["deployed"] for row in rows), rows
    assert all("the previous files are back" in (row["last_error"] or "") for row in rows), rows

    after = mta.main_cf.read_bytes(), mta.main_cf.stat()
    assert after[0] == before[0], "main.cf byte for byte"
    assert stat.S_IMODE(after[1].st_mode) == 0o644 and (after[1].st_uid, after[1].st_gid) == (
        before[1].st_uid, before[1].st_gid), "main.cf mode and owner (local sendmail reads it)"
    assert (mta.cert_dir / "sni.db").read_bytes() == sni_before
    missing = [f for f in mta.referenced() if not f.exists()]
    assert not missing, f"main.cf names files that do not exist: {missing}"
    # still serving the first deployment for both names, with and without SNI
    mta.peer.reload()
    assert mta.served(mta.submit_port, SUBMIT) == sha(first, SUBMIT, "ecdsa")
    assert mta.served(mta.mx_port, MX, "rsa") == sha(first, MX, "rsa")
    assert mta.served(mta.mx_port, "", "ecdsa") == sha(first, MX, "ecdsa")
