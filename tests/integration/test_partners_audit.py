"""certmgr audit against real Postfix instances: effective settings read with
``postconf -x`` through the Postfix deployer, judged one sentence per finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from certmgr.interfaces import Options, ProviderEnv
from certmgr.partners.audit import POSTFIX_SETTINGS, audit_postfix
from providers.deployers.postfix import PostfixDeployer
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.test"


def _audit(peer: PostfixPeer, root: Path, managed: list[str]) -> list[str]:
    table = {"config_dir": str(peer.config_dir), "cert_dir": str(root / "certs")}
    deployer = PostfixDeployer.from_config("edge", Options(table, where="deploy.edge", base_dir=root),
                                           ProviderEnv(config_dir=root, state_dir=root))
    settings = deployer.effective_settings(POSTFIX_SETTINGS)
    return [f.text for f in audit_postfix(settings, where=f"postfix {HOST}", hostname=HOST, managed=managed,
                                          read=deployer.read_file)]


def test_a_well_configured_postfix_has_no_findings(tmp_path: Path) -> None:
    ca = TestCA()
    (tmp_path / "certs").mkdir()
    files = write_chain_files(tmp_path / "certs", [ca.leaf(HOST)])
    peer = PostfixPeer(tmp_path / "pf", hostname=HOST, chain_files=files,
                       extra_main="smtp_tls_security_level = may\nsmtpd_tls_protocols = >=TLSv1.2\n"
                                  "smtp_tls_mandatory_protocols = >=TLSv1.2\n")
    peer.write_config()
    assert _audit(peer, tmp_path, [str(f) for f in files]) == []


def test_every_defect_is_one_sentence(tmp_path: Path) -> None:
    ca = TestCA()
    (tmp_path / "certs").mkdir()
    served = write_chain_files(tmp_path / "certs", [ca.leaf(HOST)])
    client = tmp_path / "client.pem"
    client.write_bytes(ca.leaf(HOST).cert_pem)  # serverAuth only, as public CAs issue them since 2026
    cidr = tmp_path / "discard.cidr"
    cidr.write_text("127.0.0.2/32 starttls\n")
    peer = PostfixPeer(tmp_path / "pf", hostname=HOST, banner_host="gateway.example.test", chain_files=served,
                       extra_main=(f"smtpd_discard_ehlo_keyword_address_maps = cidr:{cidr}\n"
                                   "smtpd_tls_protocols = !SSLv2, !SSLv3\nsmtp_tls_security_level =\n"
                                   "smtp_tls_mandatory_protocols = >=TLSv1.2\n"
                                   f"smtp_tls_cert_file = {client}\nsmtp_tls_key_file = {client}\n"))
    peer.write_config()
    where = f"postfix {HOST}"
    assert _audit(peer, tmp_path, ["/etc/postfix/certmgr/mx1.example.test.rsa.pem"]) == [
        f"{where} may hide EHLO keywords such as STARTTLS from some clients (smtpd_discard_ehlo_keyword_address_maps "
        f"= cidr:{cidr}); check that STARTTLS is offered to every client",
        f"{where} sends without TLS (smtp_tls_security_level = empty): set it to may for opportunistic TLS",
        f"{where} still allows TLSv1, TLSv1.1 (smtpd_tls_protocols = !SSLv2, !SSLv3); use >=TLSv1.2",
        f"{where} serves {served[0]}, not the file certmgr manages (/etc/postfix/certmgr/mx1.example.test.rsa.pem): "
        "renewals will not reach it",
        f"{where} greets with '220 gateway.example.test ESMTP', not its hostname {HOST}",
        f"{where} presents {client} as its SMTP client certificate, but that certificate lacks the TLS client "
        "authentication EKU (public CAs dropped it in 2026): partners that check client certificates will reject "
        "it; stop presenting it or use a certificate issued for client authentication",
    ]


def test_no_starttls_at_all(tmp_path: Path) -> None:
    peer = PostfixPeer(tmp_path / "pf", hostname=HOST, starttls=False,
                       extra_main="smtp_tls_security_level = may\nsmtpd_tls_protocols = >=TLSv1.2\n"
                                  "smtp_tls_mandatory_protocols = >=TLSv1.2\n")
    peer.write_config()
    assert _audit(peer, tmp_path, []) == [
        f"postfix {HOST} does not offer STARTTLS (smtpd_tls_security_level = none): inbound mail arrives in plain "
        "text"]


def test_exim_effective_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Exim's ``exim -bP`` through the Exim deployer: TLS 1.0 allowed (Exim's default), a
    transport presenting a server-only certificate as its client certificate, one avoiding TLS."""
    from certmgr.partners.audit import audit_exim, parse_settings
    from providers.deployers.exim import EximDeployer
    from tests.peers.exim import EximPeer, exim_env

    monkeypatch.setenv("LD_LIBRARY_PATH", exim_env()["LD_LIBRARY_PATH"])
    client = tmp_path / "client.pem"
    client.write_bytes(TestCA().leaf(HOST).cert_pem)
    peer = EximPeer(tmp_path, hostname=HOST, certs=["mx.crt"], keys=["mx.key"], routes=(
        "begin transports\nremote_smtp:\n  driver = smtp\n"
        f"  tls_certificate = {client}\nplain_smtp:\n  driver = smtp\n  hosts_avoid_tls = *\n"))
    try:
        peer.write_config()
        table = {"cert_dir": str(peer.cert_dir), "exim_binary": str(peer.binary), "config_file": str(peer.conf)}
        deployer = EximDeployer.from_config("edge", Options(table, where="deploy.edge", base_dir=tmp_path),
                                            ProviderEnv(config_dir=tmp_path, state_dir=tmp_path))
        main, transports = deployer.effective_settings()
        found = audit_exim(parse_settings(main), {n: parse_settings(t) for n, t in transports.items()},
                           where=f"exim {HOST}", hostname=HOST, managed=[str(peer.cert_dir / "mx.crt")],
                           read=deployer.read_file)
    finally:
        peer.stop()
    assert [f.text for f in found] == [
        f"exim {HOST} still allows TLSv1, TLSv1.1 (openssl_options = empty); add +no_tlsv1 +no_tlsv1_1",
        f"exim {HOST} transport remote_smtp presents {client} as its SMTP client certificate, but that certificate "
        "lacks the TLS client authentication EKU (public CAs dropped it in 2026): partners that check client "
        "certificates will reject it; stop presenting it or use a certificate issued for client authentication",
        f"exim {HOST} transport plain_smtp sends without TLS (hosts_avoid_tls = *)",
    ]
