"""Certificate facts and chains (``cryptography``): read a certificate, parse and order a PEM chain."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certmgr.pki.keys import key_type_of


class CertificateError(ValueError):
    """A certificate or chain that cannot be used; the message says why."""


@dataclass(frozen=True)
class CertFacts:
    serial: str  # hex, lower case
    subject_cn: str | None
    names: tuple[str, ...]  # DNS SANs
    key_alg: str
    key_bits: int
    not_before: datetime
    not_after: datetime
    sha256: str
    issuer_cn: str | None
    self_signed: bool


def common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificate's DNS subjectAltNames, lower case, in their order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))


def cert_facts(cert: x509.Certificate) -> CertFacts:
    """What a certificate says about itself (names, key, validity, fingerprint, issuer)."""
    names = dns_names(cert)
    alg, bits = key_type_of(cert.public_key())
    return CertFacts(
        serial=format(cert.serial_number, "x"),
        subject_cn=common_name(cert.subject),
        names=names,
        key_alg=alg,
        key_bits=bits,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        issuer_cn=common_name(cert.issuer),
        self_signed=is_self_signed(cert),
    )


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issued by itself: its issuer is its subject and its own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def parse_chain(data: bytes, where: str = "input") -> list[x509.Certificate]:
    """PEM certificates, leaf first.  DER, garbage and empty input are refused clearly."""
    if not data.strip():
        raise CertificateError(f"{where} is empty")
    if b"-----BEGIN" not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            raise CertificateError(f"{where} is not a PEM certificate (no -----BEGIN CERTIFICATE----- block)") from None
        raise CertificateError(
            f"{where} is DER (binary); convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"
        )
    if b"PRIVATE KEY-----" in data:
        raise CertificateError(f"{where} contains a private key; give only the certificate and its chain")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise CertificateError(f"{where} holds a damaged PEM certificate: {e}") from None
    if not certs:
        raise CertificateError(f"{where} holds no certificate")
    return certs


def check_chain_order(certs: list[x509.Certificate], where: str = "the chain") -> None:
    """Refuse a chain that is not leaf first, each certificate followed by the one that signed it."""
    for i, (child, parent) in enumerate(itertools.pairwise(certs)):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateError(
                f"{where} is not in order: certificate #{i + 2} ({parent.subject.rfc4514_string()}) "
                f"did not sign certificate #{i + 1} ({child.subject.rfc4514_string()}); "
                "put the server certificate first, then each issuer in turn"
            ) from None


def to_pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
