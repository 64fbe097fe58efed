"""`certmgr check` of an MTA that is an IMAP or POP3 server: a real private Dovecot.

The probe target is the ``smtp`` key of ``[[mta]]``; the protocol follows the port (143/993 IMAP,
110/995 POP3, anything else SMTP) or the ``protocol`` key (needed here: the test ports are free
loopback ports, not the standard ones).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.dovecot import DovecotPeer
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "imap.example.com"


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        ca = TestCA()
        self.trust = ca.write_root(root / "root.pem")
        self.leaf = ca.leaf(HOST)
        crt, key = root / "imap.crt", root / "imap.key"
        crt.write_bytes(self.leaf.fullchain_pem)
        key.write_bytes(self.leaf.key_pem)
        key.chmod(0o600)
        self.peer = DovecotPeer(root, cert=crt, key=key)

    def check(self, port: int, protocol: str | None) -> subprocess.CompletedProcess[str]:
        config = self.root / "certmgr.toml"
        config.write_text(f"""
[certmgr]
state_dir = "{self.root / 'state'}"
trust = "{self.trust}"

[issuer.corp]
type = "manual"

[[mta]]
hostname = "{HOST}"
issuer = "corp"
smtp = "127.0.0.1:{port}"
{f'protocol = "{protocol}"' if protocol else ''}
""")
        return subprocess.run([sys.executable, "-m", "certmgr", "-c", str(config), "check", "--json"],
                              capture_output=True, text=True, timeout=60)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    s.peer.start()
    yield s
    s.peer.stop()


@pytest.mark.parametrize("protocol", ["imap", "imaps", "pop3", "pop3s"])
def test_check_probes_imap_and_pop3(site: Site, protocol: str) -> None:
    port = {"imap": site.peer.imap_port, "imaps": site.peer.imaps_port, "pop3": site.peer.pop3_port,
            "pop3s": site.peer.pop3s_port}[protocol]
    r = site.check(port, protocol)
    assert "Traceback" not in r.stderr, r.stderr
    (report,) = json.loads(r.stdout)
    assert report["certificate"]["sha256"] == site.leaf.sha256, report
    assert report["starttls"] is True and report["tls_version"], report
    assert report["protocol"] == protocol.rstrip("s"), report
    assert report["implicit_tls"] is protocol.endswith("s"), report
    # the only findings allowed: the test name is not in DNS here, and certmgr has not deployed this
    # certificate (nothing was imported); nothing about the protocol or TLS
    assert report["status"] in ("ok", "warning"), report
    assert all("DNS" in p or "not the one certmgr deployed" in p for p in report["problems"]), report["problems"]


def test_imap_server_probed_as_smtp_says_what_to_set(site: Site) -> None:
    """A non-standard port without `protocol`: the probe speaks SMTP and must say what it met."""
    r = site.check(site.peer.imap_port, None)
    (report,) = json.loads(r.stdout)
    assert report["status"] == "critical"
    assert any('IMAP server' in p and 'protocol = "imap"' in p for p in report["problems"]), report["problems"]
