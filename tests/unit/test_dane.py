"""TLSA matching (RFC 6698 / 7672) against certificates from a test CA."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certmgr.probe.dane import Tlsa, check_chain, matches, record_for
from tests.peers.testca import TestCA


@pytest.fixture(scope="module")
def chains() -> tuple[list[x509.Certificate], list[x509.Certificate], TestCA]:
    ca = TestCA("dane")
    a = ca.leaf("mx1.example.com", key_type="ecdsa-p256")
    b = ca.leaf("mx1.example.com", key_type="ecdsa-p256")
    load = x509.load_pem_x509_certificates
    return load(a.cert_pem + a.chain_pem), load(b.cert_pem + b.chain_pem), ca


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_table(chains: tuple[list[x509.Certificate], list[x509.Certificate], TestCA]) -> None:
    a, b, _ca = chains
    leaf, inter = a[0], a[1]
    der = leaf.public_bytes(serialization.Encoding.DER)
    cases = [
        (Tlsa(3, 1, 1, hashlib.sha256(spki(leaf)).hexdigest()), True),
        (Tlsa(3, 1, 2, hashlib.sha512(spki(leaf)).hexdigest()), True),
        (Tlsa(3, 0, 1, hashlib.sha256(der).hexdigest()), True),
        (Tlsa(3, 0, 0, der.hex()), True),
        (Tlsa(3, 1, 1, hashlib.sha256(spki(leaf)).hexdigest().upper()), True),
        (Tlsa(3, 1, 1, hashlib.sha256(spki(b[0])).hexdigest()), False),  # another key
        (Tlsa(2, 1, 1, hashlib.sha256(spki(inter)).hexdigest()), True),  # the issuing CA
        (Tlsa(2, 1, 1, hashlib.sha256(spki(leaf)).hexdigest()), False),  # TA must not match the leaf
        (Tlsa(1, 1, 1, hashlib.sha256(spki(leaf)).hexdigest()), False),  # PKIX-EE: unusable for SMTP
        (Tlsa(3, 1, 9, hashlib.sha256(spki(leaf)).hexdigest()), False),  # unknown matching type
    ]
    for record, expected in cases:
        assert matches(record, a) is expected, record


def test_record_for_pins_the_key(chains: tuple[list[x509.Certificate], list[x509.Certificate], TestCA]) -> None:
    a, b, _ = chains
    assert str(record_for(a[0])).startswith("3 1 1 ")
    assert matches(record_for(a[0]), a) and not matches(record_for(a[0]), b)


def test_check_chain_sentences(chains: tuple[list[x509.Certificate], list[x509.Certificate], TestCA]) -> None:
    a, b, _ = chains
    assert check_chain([], b, "mx1.example.com", 25) is None, "no records: nothing to break"
    assert check_chain([Tlsa(1, 1, 1, "00")], b, "mx1.example.com", 25) is None, "only unusable records"
    assert check_chain([record_for(a[0]), record_for(b[0])], b, "mx1.example.com", 25) is None
    problem = check_chain([record_for(a[0])], b, "mx1.example.com", 25)
    assert problem is not None and "_25._tcp.mx1.example.com" in problem and str(record_for(b[0])) in problem
