"""Private keys and CSRs (``cryptography``).

Keys are RSA 2048/3072/4096 or ECDSA P-256/P-384 and nothing weaker.  A CSR's
subject CN is the MTA hostname and its SAN list is the hostname plus the
configured names, so what the CA signs is the name the MTA announces.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from certmgr.errors import StateError
from certmgr.pki.keytypes import KEY_TYPES

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_CURVES: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}


#: RSA keys generated at once: one per core.  Generation releases the interpreter, so renewal
#: threads would otherwise all share the cores and every key would be ready only when the last
#: one is; in turn, the first orders start while the other keys are still being made.
_RSA_AT_ONCE = threading.BoundedSemaphore(os.cpu_count() or 1)


def generate_key(key_type: str) -> PrivateKey:
    alg, size = KEY_TYPES[key_type]
    if alg == "rsa":
        with _RSA_AT_ONCE:
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


def public_key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(key.public_key().public_bytes(enc, fmt) == cert.public_key().public_bytes(enc, fmt))
