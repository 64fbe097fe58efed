"""The STARTTLS probe against a real Postfix serving each kind of certificate.

One private Postfix serves the cases in turn (its chain file swapped and the
server reloaded), with OpenSSL security level 0 so it can load an RSA-1024 key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certmgr.interfaces import CertBundle
from certmgr.probe.assess import assess, to_json
from certmgr.probe.client import ProbeResult, probe
from tests.peers.postfix import PostfixPeer, chain_file_pem, postconf, wait_until
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration
HOST = "mx1.example.com"


class Served:
    def __init__(self, root: Path) -> None:
        self.ca = TestCA()
        self.trust = self.ca.write_root(root / "root.pem")
        self.chain = root / "chain.pem"
        self.good = self.ca.leaf(HOST, ("mail.example.com",))
        self.install(self.good)
        self.peer = PostfixPeer(root / "postfix", hostname=HOST, chain_files=[self.chain], seclevel0=True)

    def install(self, bundle: CertBundle) -> None:
        self.chain.write_bytes(chain_file_pem(bundle))
        self.chain.chmod(0o600)

    def probe(self) -> ProbeResult:
        return probe("127.0.0.1", self.peer.port, servername=HOST, trust_file=self.trust, timeout=5)

    def serve(self, bundle: CertBundle, *settings: str) -> ProbeResult:
        self.install(bundle)
        if settings:
            postconf(self.peer, *settings)
        self.peer.reload()
        wait_until(lambda: (c := self.probe().certificate) is not None and c.sha256 == bundle.sha256,
                   what=f"postfix to serve {bundle.sha256[:12]}")
        return self.probe()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("probe-postfix"))
    s.peer.start()
    yield s
    s.peer.stop()


def check(result: ProbeResult) -> tuple[str, list[str]]:
    return assess(result, expected_hostname=HOST, managed_sha256s=None, now=datetime.now(UTC))


def test_good_certificate(served: Served) -> None:
    result = served.serve(served.good)
    assert check(result) == ("ok", [])
    assert result.banner_host == HOST and result.starttls and result.tls_version == "TLSv1.3"
    assert result.certificate is not None and result.certificate.chain_valid
    assert result.leaf_der is not None and len(result.chain_der) == 2  # leaf + intermediate
    out = to_json(result, expected_hostname=HOST, managed_sha256s=[served.good.sha256], now=datetime.now(UTC))
    assert out["matches_managed"] is True and out["certificate"]["sha256"] == served.good.sha256
    assert out["certificate"]["sans"] == [HOST, "mail.example.com"]


def test_without_trusting_the_test_ca_the_chain_is_invalid(served: Served) -> None:
    served.serve(served.good)
    result = probe("127.0.0.1", served.peer.port, servername=HOST, timeout=5)
    status, problems = check(result)
    assert status == "critical" and problems[0].startswith("certificate chain does not verify")


def test_other_name(served: Served) -> None:
    result = served.serve(served.ca.leaf("other.example.org"))
    assert check(result) == ("critical", [f"certificate does not cover {HOST}"])


def test_banner_differs_from_hostname(served: Served) -> None:
    try:
        result = served.serve(served.good, "smtpd_banner = mail.example.net ESMTP")
        assert result.banner_host == "mail.example.net"
        expected = f"banner announces mail.example.net but the certificate covers {HOST}, mail.example.com"
        assert check(result) == ("warning", [expected])
    finally:
        postconf(served.peer, f"smtpd_banner = {HOST} ESMTP")


def test_expired(served: Served) -> None:
    old = served.ca.leaf(HOST, days=-3)
    result = served.serve(old)
    assert check(result) == ("critical", [f"certificate expired on {old.not_after:%Y-%m-%d}"])


def test_expires_soon(served: Served) -> None:
    result = served.serve(served.ca.leaf(HOST, days=5, not_before=datetime.now(UTC) - timedelta(hours=1)))
    assert check(result) == ("critical", ["certificate expires in 4 days"])


def test_self_signed(served: Served) -> None:
    result = served.serve(served.ca.leaf(HOST, self_signed=True))
    assert check(result) == ("critical", ["certificate is self-signed"])


def test_weak_rsa_1024(served: Served) -> None:
    result = served.serve(served.ca.leaf(HOST, key_type="rsa-1024"))
    assert check(result) == ("critical", ["certificate has a weak RSA-1024 key"])


def test_starttls_disabled(served: Served) -> None:
    try:
        postconf(served.peer, "smtpd_tls_security_level = none")
        served.peer.reload()
        wait_until(lambda: not served.probe().starttls, what="postfix to stop offering STARTTLS")
        result = served.probe()
        assert result.certificate is None and result.banner_host == HOST
        assert check(result) == ("critical", ["STARTTLS is not offered to this client"])
    finally:
        postconf(served.peer, "smtpd_tls_security_level = may")
        served.peer.reload()


def test_connection_refused_is_unknown(served: Served) -> None:
    from tests.peers.util import free_port

    port = free_port()
    result = probe("127.0.0.1", port, timeout=2)
    assert check(result) == ("unknown", [f"cannot connect to 127.0.0.1:{port}: connection refused"])
