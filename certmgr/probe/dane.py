"""DANE for SMTP (RFC 7672): do the MTA's TLSA records match its certificate?

A sending MTA that validates DANE refuses to deliver when no usable TLSA record
at ``_25._tcp.<mx host>`` matches what the receiving MTA serves.  Rotating the key
at renewal breaks a "3 1 1" record pinned to the old key, so certmgr checks the
records before it deploys a new certificate and says which record to publish.

Only DANE-TA(2) and DANE-EE(3) are usable for SMTP; PKIX-TA(0) and PKIX-EE(1)
records are ignored by senders (RFC 7672 section 3.1.3) and so are here.  certmgr
reads the records as published; it does not validate DNSSEC (a sender does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certmgr.probe.dns import make_resolver

USAGE_DANE_TA, USAGE_DANE_EE = 2, 3


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int  # 0 full certificate, 1 SubjectPublicKeyInfo
    mtype: int  # 0 exact, 1 SHA-256, 2 SHA-512
    data: str  # hex, lower case

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data}"

    @property
    def usable(self) -> bool:
        return self.usage in (USAGE_DANE_TA, USAGE_DANE_EE) and self.selector in (0, 1) and self.mtype in (0, 1, 2)


def _digest(data: bytes, mtype: int) -> str:
    if mtype == 1:
        return hashlib.sha256(data).hexdigest()
    if mtype == 2:
        return hashlib.sha512(data).hexdigest()
    return data.hex()


def _selected(cert: x509.Certificate, selector: int) -> bytes:
    if selector == 1:
        return cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_bytes(serialization.Encoding.DER)


def matches(record: Tlsa, chain: Sequence[x509.Certificate]) -> bool:
    """Does a usable ``record`` match this served chain (leaf first)?"""
    if not record.usable or not chain:
        return False
    candidates = chain[:1] if record.usage == USAGE_DANE_EE else chain[1:]
    return any(_digest(_selected(c, record.selector), record.mtype) == record.data.lower() for c in candidates)


def record_for(cert: x509.Certificate, usage: int = USAGE_DANE_EE) -> Tlsa:
    """The "3 1 1" record that pins this certificate's key (survives renewals with the same key);
    with ``usage=2`` the "2 1 1" record pinning an issuing CA certificate's key."""
    return record_for_key(cert.public_key(), usage)


def record_for_key(public_key: PublicKeyTypes, usage: int = USAGE_DANE_EE) -> Tlsa:
    """The "<usage> 1 1" record pinning a key, known before any certificate for it exists."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Tlsa(usage, 1, 1, _digest(spki, 1))


def lookup(hostname: str, port: int, resolver: tuple[str, int] | None, timeout: float = 3.0) -> list[Tlsa]:
    """TLSA records at ``_<port>._tcp.<hostname>``; none when the name has none (or does not exist)."""
    import dns.exception
    import dns.resolver

    res = make_resolver(resolver, timeout)
    try:
        answer = res.resolve(f"_{port}._tcp.{hostname}", "TLSA", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout):
        # cannot tell: the caller treats "unknown" like "none" and says so in its report
        return []
    return [Tlsa(r.usage, r.selector, r.mtype, r.cert.hex()) for r in answer]


def check_chain(records: list[Tlsa], chain: Sequence[x509.Certificate], hostname: str, port: int) -> str | None:
    """None when DANE senders will accept this chain (or no usable record is published), else why not."""
    usable = [r for r in records if r.usable]
    if not usable or any(matches(r, chain) for r in usable):
        return None
    return (f"no TLSA record at _{port}._tcp.{hostname} matches the certificate (DANE senders will not "
            f"deliver); publish `{record_for(chain[0])}` there")
