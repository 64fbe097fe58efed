"""Private keys, CSRs and certificate facts (``cryptography``).

Keys are RSA 2048/3072/4096 or ECDSA P-256/P-384 and nothing weaker.  A CSR's
subject CN is the MTA hostname and its SAN list is the hostname plus the
configured names, so what the CA signs is the name the MTA announces.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from certmgr.config import KEY_TYPES
from certmgr.errors import StateError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_CURVES: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}


class CertificateError(ValueError):
    """A certificate or chain that cannot be used; the message says why."""


def generate_key(key_type: str) -> PrivateKey:
    alg, size = KEY_TYPES[key_type]
    if alg == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    return ec.generate_private_key(_CURVES[size])


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(path: Path) -> PrivateKey:
    """Load a stored private key; a missing, truncated or corrupted file is a StateError."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StateError(f"cannot read private key {path}: {e.strerror}") from e
    return parse_key(data, str(path))


def parse_key(data: bytes, where: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise StateError(
            f"private key {where} is damaged or not a PEM key ({type(e).__name__}); "
            "move it aside and run `certmgr renew --force` for that host to make a new one"
        ) from None  # the cause may quote key bytes: never chain it
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise StateError(f"private key {where} is of an unsupported type")
    return key


def key_type_of(public_key: object) -> tuple[str, int]:
    """(``rsa``|``ecdsa``|``ed25519``|``ed448``|``dsa``|``unknown``, bits) of a public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ecdsa", public_key.curve.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448", 456
    if isinstance(public_key, dsa.DSAPublicKey):
        return "dsa", public_key.key_size
    return "unknown", 0


def weak_key_reason(public_key: object) -> str | None:
    alg, bits = key_type_of(public_key)
    if alg == "rsa" and bits < 2048:
        return f"the key is RSA-{bits}; at least RSA-2048 is required"
    if alg == "ecdsa":
        if bits < 256:
            return f"the key is ECDSA P-{bits}; at least P-256 is required"
        return None
    if alg != "rsa":
        return f"the key type {alg} is not accepted for MTA certificates (use RSA or ECDSA)"
    return None


#: the longest subject common name X.509 allows (RFC 5280 ub-common-name)
CN_MAX = 64


def make_csr(key: PrivateKey, hostname: str, names: tuple[str, ...]) -> bytes:
    """PEM CSR with CN = hostname and SAN = hostname + names (deduplicated, order kept).

    A hostname longer than :data:`CN_MAX` cannot be a CN: the subject is left empty and
    the name is only in the SAN, as CAs do themselves (a CN is not needed for TLS).
    """
    sans = list(dict.fromkeys((hostname, *names)))
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, hostname)] if len(hostname) <= CN_MAX else []
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


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


def cert_facts(cert: x509.Certificate) -> CertFacts:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
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
        self_signed=cert.issuer == cert.subject,
    )


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


def public_key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(key.public_key().public_bytes(enc, fmt) == cert.public_key().public_bytes(enc, fmt))


def now_utc() -> datetime:
    return datetime.now(UTC)
