"""`certmgr audit` as a user runs it: a real Postfix whose STARTTLS is hidden from one client
address (effective settings read through the deploy target, probes from 127.0.0.1 and
127.0.0.2); a Postfix reached over a real sshd; a real Dovecot's settings in force and its
STARTTLS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.dovecot import DovecotPeer
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.sshd import SshdPeer
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.test"
IMAP = "imap.example.test"


def audit_cli(tmp_path: Path, deploy: str, mta: str, host: str = HOST) -> Cli:
    """A config with one manual-issuer [[mta]] ``host`` (``mta``: its other lines) and the
    ``deploy`` table(s) it names."""
    config = tmp_path / "certmgr.toml"
    config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.corp]
type = "manual"

{deploy}
[[mta]]
hostname = "{host}"
issuer = "corp"
{mta}""")
    return Cli(config)


def test_audit_finds_starttls_hidden_from_one_source(tmp_path: Path) -> None:
    ca = TestCA()
    certs = tmp_path / "certs"
    certs.mkdir()
    served = write_chain_files(certs, [ca.leaf(HOST)])
    cidr = tmp_path / "discard.cidr"
    cidr.write_text("127.0.0.2/32 starttls\n")
    peer = PostfixPeer(tmp_path / "pf", hostname=HOST, chain_files=served, extra_main=(
        f"smtpd_discard_ehlo_keyword_address_maps = cidr:{cidr}\nsmtp_tls_security_level = may\n"
        "smtpd_tls_protocols = >=TLSv1.2\nsmtp_tls_mandatory_protocols = >=TLSv1.2\n"))
    peer.start()
    try:
        cli = audit_cli(tmp_path, f'[deploy.edge]\ntype = "postfix"\nconfig_dir = "{peer.config_dir}"\n'
                                  f'cert_dir = "{certs}"\n', f'deploy = ["edge"]\nsmtp = "127.0.0.1:{peer.port}"\n')
        r = cli("audit", "--json", "--source", "127.0.0.1", "--source", "127.0.0.2", check=2)
        [report] = json.loads(r.stdout)
        assert report["hostname"] == HOST and report["status"] == "critical"
        assert report["problems"] == [
            f"{HOST} [deploy.edge] may hide EHLO keywords such as STARTTLS from some clients "
            f"(smtpd_discard_ehlo_keyword_address_maps = cidr:{cidr}); check that STARTTLS is offered to every client",
            f"{HOST} (127.0.0.1:{peer.port}) offers STARTTLS to clients from 127.0.0.1 but not to clients from "
            "127.0.0.2",
        ]
        # from one address only, the probe cannot see it; the setting is still reported
        one = json.loads(cli("audit", "--json", check=1).stdout)
        assert one[0]["status"] == "warning" and len(one[0]["problems"]) == 1
    finally:
        peer.stop()


def test_audit_over_ssh(tmp_path: Path) -> None:
    ca = TestCA()
    certs = tmp_path / "certs"
    certs.mkdir()
    served = write_chain_files(certs, [ca.leaf(HOST)])
    peer = PostfixPeer(tmp_path / "pf", hostname=HOST, chain_files=served, extra_main=(
        "smtp_tls_security_level = none\nsmtpd_tls_protocols = >=TLSv1.2\n"
        "smtp_tls_mandatory_protocols = >=TLSv1.2\n"))
    sshd = SshdPeer(tmp_path / "sshd").start()
    peer.start()
    try:
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        deploy = (f'[deploy.edge]\ntype = "postfix"\nconfig_dir = "{peer.config_dir}"\ncert_dir = "{certs}"\n'
                  f'host = "{sshd.url}"\nssh_identity = "{sshd.identity}"\n')
        mta = f'deploy = ["edge"]\nsmtp = "127.0.0.1:{peer.port}"\n'
        cli = audit_cli(tmp_path, deploy + f'ssh_known_hosts = "{sshd.known_hosts}"\n', mta)
        logins = sshd.log.read_text().count("Accepted publickey for root")
        [report] = json.loads(cli("audit", "--json", check=2).stdout)
        assert report["problems"] == [
            f"{HOST} [deploy.edge] sends without TLS (smtp_tls_security_level = none): set it to may for "
            "opportunistic TLS"]
        assert sshd.log.read_text().count("Accepted publickey for root") > logins  # postconf ran over SSH

        # the host key not pinned: nothing is read, and the audit says why
        cli = audit_cli(tmp_path, deploy + f'ssh_known_hosts = "{empty}"\n', mta)
        [report] = json.loads(cli("audit", "--json", check=1).stdout)
        [problem] = report["problems"]
        assert problem.startswith(f"{HOST} [deploy.edge]: the effective settings cannot be read: ")
        assert f"cannot reach {sshd.url}" in problem, problem
    finally:
        peer.stop()
        sshd.stop()


def _audit_dovecot(tmp_path: Path, extra: str, check: int) -> tuple[DovecotPeer, dict[str, object]]:
    ca = TestCA()
    certs = tmp_path / "certs"
    certs.mkdir()
    leaf = ca.leaf(IMAP)
    cert, key = certs / f"{IMAP}.rsa.crt", certs / f"{IMAP}.rsa.key"  # where certmgr writes them
    cert.write_bytes(leaf.cert_pem + leaf.chain_pem)
    key.write_bytes(leaf.key_pem)
    key.chmod(0o600)
    (tmp_path / "dovecot").mkdir()
    peer = DovecotPeer(tmp_path / "dovecot", cert=cert, key=key, extra=extra).start()
    try:
        cli = audit_cli(tmp_path, f'[deploy.imap]\ntype = "dovecot"\ncert_dir = "{certs}"\n'
                                  f'dovecot_config = "{peer.conf}"\n',
                        f'deploy = ["imap"]\nsmtp = "127.0.0.1:{peer.imap_port}"\nprotocol = "imap"\n', IMAP)
        [report] = json.loads(cli("audit", "--json", check=check).stdout)
    finally:
        peer.stop()
    return peer, report


def test_audit_dovecot_finds_plaintext_passwords_and_old_tls(tmp_path: Path) -> None:
    _, report = _audit_dovecot(tmp_path, "disable_plaintext_auth = no\nssl_min_protocol = TLSv1\n", 2)
    assert report["status"] == "critical"
    assert report["problems"] == [
        f"{IMAP} [deploy.imap] accepts passwords over connections without TLS (disable_plaintext_auth = no, "
        "ssl = yes): set disable_plaintext_auth = yes, or ssl = required",
        f"{IMAP} [deploy.imap] still allows TLSv1 and later (ssl_min_protocol = TLSv1); use TLSv1.2"]


def test_audit_dovecot_with_ssl_required_is_clean(tmp_path: Path) -> None:
    # plaintext auth allowed in the settings, but ssl = required refuses it without TLS
    _, report = _audit_dovecot(tmp_path, "disable_plaintext_auth = no\nssl = required\n", 0)
    assert (report["status"], report["problems"]) == ("ok", [])


def test_audit_dovecot_probes_starttls(tmp_path: Path) -> None:
    # STARTTLS switched off for IMAP only: doveconf's top-level ssl says yes, the probe tells the truth
    peer, report = _audit_dovecot(tmp_path, "protocol imap {\n  ssl = no\n}\n", 2)
    assert report["problems"] == [
        f"{IMAP} (127.0.0.1:{peer.imap_port}) does not offer STARTTLS on IMAP: clients that connect there log in "
        "and read mail in plain text"]
