"""`certmgr audit` against a real Postfix whose STARTTLS is hidden from one client address:
effective settings read through the deploy target, probes from 127.0.0.1 and 127.0.0.2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli
from tests.peers.postfix import PostfixPeer, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.test"


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
        config = tmp_path / "certmgr.toml"
        config.write_text(f"""
[certmgr]
state_dir = "{tmp_path / 'state'}"

[issuer.corp]
type = "manual"

[deploy.edge]
type = "postfix"
config_dir = "{peer.config_dir}"
cert_dir = "{certs}"

[[mta]]
hostname = "{HOST}"
issuer = "corp"
deploy = ["edge"]
smtp = "127.0.0.1:{peer.port}"
""")
        cli = Cli(config)
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
