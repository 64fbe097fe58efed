"""One hostname normaliser and one "self-signed" test, used by the config, imports and probes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certmgr.config.load import load_config
from certmgr.pki.certs import CertFacts, cert_facts, is_self_signed
from certmgr.pki.names import comparable_name, normalize_hostname
from certmgr.probe.facts import certificate_facts


@pytest.mark.parametrize("raw", ["mx1.example.com", "MX1.Example.COM.", "bücher.example.de",
                                 "xn--bcher-kva.example.de"])
def test_a_configured_name_compares_as_the_probe_compares_it(raw: str) -> None:
    assert comparable_name(raw) == normalize_hostname(raw)


def test_config_finds_an_mta_however_its_name_is_written(tmp_path: Path) -> None:
    path = tmp_path / "certmgr.toml"
    path.write_text(f'[certmgr]\nstate_dir = "{tmp_path}"\n[issuer.m]\ntype = "manual"\n'
                    '[[mta]]\nhostname = "bücher.example.de"\nissuer = "m"\n')
    config = load_config(path)
    assert config.mta("BÜCHER.example.de.").hostname == "xn--bcher-kva.example.de"
    assert config.mta("xn--bcher-kva.example.de").hostname == "xn--bcher-kva.example.de"


def _cert(subject: str, issuer: str, signer: ec.EllipticCurvePrivateKey,
          key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
            .sign(signer, hashes.SHA256()))


def test_self_signed_means_the_same_for_imports_and_probes() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    own = _cert("mx1.example.com", "mx1.example.com", key, key)
    # same issuer name as subject, but signed by another key: not issued by itself
    lookalike = _cert("mx1.example.com", "mx1.example.com", other, key)
    for cert, expected in ((own, True), (lookalike, False)):
        der = cert.public_bytes(serialization.Encoding.DER)
        assert is_self_signed(cert) is expected
        assert cert_facts(cert).self_signed is expected
        assert certificate_facts(der, (), trust_file=None).self_signed is expected


def test_the_probe_reads_a_certificate_with_the_one_facts_reader() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("MX1.example.com", "Test CA", key, key)
    served = certificate_facts(cert.public_bytes(serialization.Encoding.DER), (), trust_file=None)
    assert isinstance(served, CertFacts)
    assert dataclasses.replace(served) == served
    assert {f.name: getattr(served, f.name) for f in dataclasses.fields(CertFacts)} == vars(cert_facts(cert))
    assert served.names == ("mx1.example.com",) and not served.chain_valid
