"""The DNS peers the DANE and MTA-STS tests stand on: a DNSSEC-signed dynamic zone, a
lagging secondary, a validating resolver, and Postfix's own ``posttls-finger`` at level
``dane`` resolving through it against a real Postfix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certmgr.probe.dane import record_for
from tests.peers.named import DaneDns, dane_dns, dane_verified, posttls_finger
from tests.peers.postfix import PostfixPeer, wait_until, write_chain_files
from tests.peers.testca import TestCA

pytestmark = pytest.mark.integration

MX = "mx1.example.test"


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaneDns]:
    with dane_dns(tmp_path_factory.mktemp("dane-dns"), resolve_via_secondary=False) as d:
        yield d


def test_resolver_validates_the_signed_zone(dns: DaneDns) -> None:
    assert dns.primary.ksk() is not None
    assert dns.resolver.validated("A", MX) == ["127.0.0.1"]


def test_secondary_serves_old_records_until_sync(dns: DaneDns) -> None:
    dns.primary.replace("lag", "TXT", ['"v1"'])
    dns.secondary.sync()
    dns.primary.replace("lag", "TXT", ['"v2"'])
    assert dns.primary.txt("lag.example.test") == ["v2"]
    assert dns.secondary.txt("lag.example.test") == ["v1"]
    dns.secondary.sync()
    assert dns.secondary.txt("lag.example.test") == ["v2"]


def test_posttls_finger_dane_verifies_only_a_matching_tlsa(dns: DaneDns, tmp_path: Path) -> None:
    ca = TestCA()
    bundle = ca.leaf(MX, key_type="ecdsa-p256")
    other = ca.leaf(MX, key_type="ecdsa-p256")
    (tmp_path / "certs").mkdir()
    peer = PostfixPeer(tmp_path / "postfix", hostname=MX,
                       chain_files=write_chain_files(tmp_path / "certs", [bundle])).start()
    try:
        # a TLSA owner below mx1 makes mx1 an empty non-terminal that the wildcard
        # no longer covers: the host needs an A record of its own
        dns.primary.replace("mx1", "A", ["127.0.0.1"])
        owner = f"_{peer.port}._tcp.mx1"
        wrong = record_for(x509.load_pem_x509_certificate(other.cert_pem))
        dns.primary.replace(owner, "TLSA", [str(wrong)])
        failed = posttls_finger(dns.resolver, MX, peer.port)
        assert not dane_verified(failed), failed.stdout + failed.stderr
        assert "TLSA" in failed.stdout + failed.stderr, failed.stdout + failed.stderr  # DANE was tried

        right = record_for(x509.load_pem_x509_certificate(bundle.cert_pem))
        dns.primary.replace(owner, "TLSA", [str(right)])
        wait_until(lambda: dns.resolver.validated("TLSA", f"{owner}.example.test") == [str(right)],
                   what="the resolver to see the new TLSA record")
        ok = posttls_finger(dns.resolver, MX, peer.port)
        assert dane_verified(ok), ok.stdout + ok.stderr
    finally:
        peer.stop()
