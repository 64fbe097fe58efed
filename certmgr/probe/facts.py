"""Facts about a served certificate: names, key, validity, and whether its chain verifies.

Pure reading of DER bytes with ``cryptography``; no network.  The probe calls
:func:`certificate_facts` on what a server presented, without having trusted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certmgr.pki.certs import CertFacts, cert_facts, dns_names
from certmgr.pki.trust import trust_anchors


@dataclass(frozen=True)
class ServedCert(CertFacts):
    """A certificate as a server presented it: its facts and whether its chain verifies."""

    chain_valid: bool
    #: why the chain does not verify (None when it does)
    chain_error: str | None


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
    sans = dns_names(leaf)
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
                      now: datetime | None = None) -> ServedCert:
    """Read the served leaf and judge its chain (``chain_der`` may include the leaf first)."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    intermediates = [x509.load_der_x509_certificate(d) for d in chain_der if d != leaf_der]
    facts = cert_facts(leaf)
    error = "the certificate is self-signed" if facts.self_signed else verify_chain(
        leaf, intermediates, trust_anchors(trust_file), now or datetime.now(UTC))
    return ServedCert(**vars(facts), chain_valid=error is None, chain_error=error)
