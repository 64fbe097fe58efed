"""Facts about a served certificate: names, key, validity, and whether its chain verifies.

Pure reading of DER bytes with ``cryptography``; no network.  The probe calls
:func:`certificate_facts` on what a server presented, without having trusted it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certmgr.pki.certs import common_name
from certmgr.pki.keys import key_type_of
from certmgr.pki.trust import trust_anchors


@dataclass(frozen=True)
class CertFacts:
    subject_cn: str | None  # some ACME profiles issue certificates without a CN
    sans: tuple[str, ...]
    issuer_cn: str | None
    not_before: datetime
    not_after: datetime
    key_type: str  # "rsa" | "ecdsa" | "ed25519" | ...
    key_bits: int
    sha256: str  # hex of the leaf DER
    serial: str  # hex
    self_signed: bool
    chain_valid: bool
    #: why the chain does not verify (None when it does)
    chain_error: str | None


def normalize_name(name: str) -> str:
    """Case-insensitive, trailing dot dropped, IDN in IDNA form (how names are compared)."""
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def covers(names: tuple[str, ...], hostname: str) -> bool:
    """Does a certificate with these SANs cover ``hostname``?  ``*.`` matches one label."""
    host = normalize_name(hostname)
    for raw in names:
        name = normalize_name(raw)
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            if host.split(".", 1)[1] == name[2:]:
                return True
    return False


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(ext.value.get_values_for_type(x509.DNSName))


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 anchors: tuple[x509.Certificate, ...], now: datetime) -> str | None:
    """None when ``leaf`` chains to an anchor through ``intermediates``, else the reason.

    Only the trust path is judged here: the name is checked against the leaf's own
    first SAN (the probe reports name coverage separately), and the time is clamped
    into the validity of the served certificates so an expired leaf is reported as
    expired, not as an untrusted chain.
    """
    if not anchors:
        return "no trust anchors are available"
    sans = _sans(leaf)
    if not sans:
        return "the certificate has no DNS subjectAltName"
    served = [leaf, *intermediates]
    start = max(c.not_valid_before_utc for c in served)
    end = min(c.not_valid_after_utc for c in served)
    at = min(max(now, start + timedelta(seconds=1)), end - timedelta(seconds=1)) if start < end else now
    # a wildcard SAN stands for any one label: verify against a concrete name under it
    subject = "x" + sans[0][1:] if sans[0].startswith("*.") else sans[0]
    try:
        verifier = PolicyBuilder().store(Store(list(anchors))).time(at).build_server_verifier(
            x509.DNSName(subject)
        )
        verifier.verify(leaf, intermediates)
    except VerificationError as e:
        return str(e)
    except ValueError as e:
        return f"cannot verify: {e}"
    return None


def certificate_facts(leaf_der: bytes, chain_der: tuple[bytes, ...], *, trust_file: Path | None,
                      now: datetime | None = None) -> CertFacts:
    """Read the served leaf and judge its chain (``chain_der`` may include the leaf first)."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    intermediates = [x509.load_der_x509_certificate(d) for d in chain_der if d != leaf_der]
    key_type, key_bits = key_type_of(leaf.public_key())
    self_signed = _is_self_signed(leaf)
    error = "the certificate is self-signed" if self_signed else verify_chain(
        leaf, intermediates, trust_anchors(trust_file), now or datetime.now(UTC))
    return CertFacts(
        subject_cn=common_name(leaf.subject),
        sans=_sans(leaf),
        issuer_cn=common_name(leaf.issuer),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        key_type=key_type,
        key_bits=key_bits,
        sha256=hashlib.sha256(leaf_der).hexdigest(),
        serial=format(leaf.serial_number, "x"),
        self_signed=self_signed,
        chain_valid=error is None,
        chain_error=error,
    )
