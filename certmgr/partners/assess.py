"""Does each MX address of a partner meet the TLS level the partner requires?

Pure functions of the facts and ``now``.  The rules are those of Postfix's SMTP
client at each level (``smtp_tls_security_level``):

- ``encrypt``: STARTTLS is offered and a TLS handshake succeeds (TLS 1.0/1.1 still
  succeed with an anonymous cipher, as ``posttls-finger`` shows, but are a warning);
- ``verify``: also TLS 1.2 or later (OpenSSL 3 refuses the older protocols'
  certificate signatures), a chain to a trusted root, not expired, and a name
  that matches the MX hostname (or a ``match`` name);
- ``secure``: the same, matched against ``match`` or the partner domain and its
  subdomains (the MX name from insecure DNS is not trusted);
- ``dane``: a DNSSEC-validated TLSA RRset must match the certificate; without one
  the MX gets opportunistic TLS (mail is never deferred for lack of TLSA);
- ``dane-only``: a validated, matching TLSA RRset is required.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509

from certmgr.partners.model import AddressFacts, PartnerFacts, StsPolicy
from certmgr.partners.mtasts import mx_allowed
from certmgr.pki.names import comparable_name, covers
from certmgr.probe import dane
from certmgr.probe.assess import CRITICAL, OK, UNKNOWN, WARNING
from certmgr.times import days_left, iso

#: as ``certmgr check``: a check that could not be made ranks below a finding
_RANK = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}
MODERN_TLS = ("TLSv1.2", "TLSv1.3")
#: a certificate that meets the level but expires sooner than this is a warning
WARN_DAYS = 14


def accepted_names(level: str, host: str, domain: str, match: tuple[str, ...]) -> tuple[str, ...]:
    """The names a certificate must carry at ``level`` (a leading dot: any subdomain)."""
    if match:
        return tuple(comparable_name(m) if not m.startswith(".") else "." + comparable_name(m[1:]) for m in match)
    if level == "secure":
        return (domain, "." + domain)
    return (host,)


def name_matches(sans: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """Does a certificate with these SANs carry one of ``names``?"""
    for name in names:
        if name.startswith("."):
            # Postfix "dot-nexthop": any name under the domain, wildcards included
            if any(comparable_name(s).endswith(name) for s in sans):
                return True
        elif covers(sans, name):
            return True
    return False


def _where(a: AddressFacts) -> str:
    return f"{a.host} ({a.address})" if a.address else a.host


def judge_address(a: AddressFacts, *, level: str, domain: str, match: tuple[str, ...],
                  now: datetime) -> tuple[bool | None, list[tuple[str, str]]]:
    """(meets the level — None when unknown, [(severity, sentence)])."""
    where = _where(a)
    deferred = f"mail to {domain} will be deferred under '{level}'"
    if a.address is None or a.probe is None:
        return False, [(CRITICAL, f"{a.host} has no address ({a.dns_error}): {deferred}")]
    p = a.probe
    if p.unreachable:
        return None, [(UNKNOWN, f"{where} cannot be reached on port 25: {p.error}")]
    if p.error is not None and not p.starttls:
        return False, [(CRITICAL, f"{where} fails before STARTTLS ({p.error}): {deferred}")]
    if not p.starttls:
        return False, [(CRITICAL, f"{where} does not offer STARTTLS: {deferred}")]
    if p.error is not None:
        return False, [(CRITICAL, f"{where}: the TLS handshake fails ({p.error}): {deferred}")]
    cert = p.certificate
    found: list[tuple[str, str]] = []
    if p.tls_version not in MODERN_TLS and level != "encrypt":
        # before TLS 1.2 the server signs with MD5+SHA-1, which OpenSSL 3 refuses at its
        # default security level ("legacy sigalg disallowed"): no authenticated handshake
        return False, [(CRITICAL, f"{where} negotiates only {p.tls_version}, whose certificate signatures "
                                  f"OpenSSL 3 refuses, so its certificate cannot be verified: {deferred}")]
    if p.tls_version not in MODERN_TLS:
        # under 'encrypt' Postfix still delivers (an anonymous cipher needs no signature)
        found.append((WARNING, f"{where} negotiates only {p.tls_version}, deprecated since RFC 8996: mail to "
                               f"{domain} is encrypted, but weakly; ask the partner for TLS 1.2 or later"))
    if level in ("verify", "secure") and cert is not None:
        if cert.self_signed:
            found.append((CRITICAL, f"{where} presents a self-signed certificate: {deferred}"))
        elif not cert.chain_valid:
            found.append((CRITICAL, f"{where} presents a certificate that does not chain to a trusted root "
                                    f"({cert.chain_error}): {deferred}"))
        if cert.not_after <= now:
            found.append((CRITICAL, f"{where} presents a certificate that expired on "
                                    f"{cert.not_after:%Y-%m-%d}: {deferred}"))
        elif cert.not_before > now:
            found.append((CRITICAL, f"{where} presents a certificate not valid before "
                                    f"{cert.not_before:%Y-%m-%d}: {deferred}"))
        names = accepted_names(level, a.host, domain, match)
        if not name_matches(cert.names, names):
            found.append((CRITICAL, f"{where} presents a certificate for {', '.join(cert.names) or 'no name'}, "
                                    f"which matches none of {', '.join(names)}: {deferred}"))
    if level in ("dane", "dane-only"):
        found.extend(_dane_problems(a, level, where, deferred))
    meets = not any(sev == CRITICAL for sev, _ in found)
    if meets and cert is not None and cert.not_after > now and days_left(cert.not_after, now) < WARN_DAYS:
        left = days_left(cert.not_after, now)
        found.append((WARNING, f"{where} presents a certificate that expires in {left} day"
                               f"{'s' if left != 1 else ''} ({cert.not_after:%Y-%m-%d})"))
    return meets, found


def _dane_problems(a: AddressFacts, level: str, where: str, deferred: str) -> list[tuple[str, str]]:
    d = a.dane
    usable = [r for r in (d.records if d and d.validated else ()) if r.usable]
    if not usable:
        if level == "dane-only":
            why = d.error if d and d.error else (
                "its TLSA records are not DNSSEC-validated" if d and d.records else "it publishes no TLSA record")
            return [(CRITICAL, f"{where} has no usable DANE TLSA record at _25._tcp.{a.host} ({why}): {deferred}")]
        return []
    chain = [x509.load_der_x509_certificate(c) for c in _served(a)]
    if not any(dane.matches(r, chain) for r in usable):
        return [(CRITICAL, f"{where} presents a certificate that matches none of its TLSA records at "
                           f"_25._tcp.{a.host}: {deferred}")]
    return []


def _served(a: AddressFacts) -> list[bytes]:
    p = a.probe
    if p is None or p.leaf_der is None:
        return []
    return [p.leaf_der, *(c for c in p.chain_der if c != p.leaf_der)]


def dane_json(a: AddressFacts) -> dict[str, Any] | None:
    d = a.dane
    if d is None:
        return None
    usable = [r for r in d.records if r.usable] if d.validated else []
    chain = [x509.load_der_x509_certificate(c) for c in _served(a)]
    return {
        "validated": d.validated,
        "tlsa": [str(r) for r in d.records],
        "match": any(dane.matches(r, chain) for r in usable) if usable and chain else None,
    }


def _sts_problems(facts: PartnerFacts) -> list[tuple[str, str]]:
    sts: StsPolicy = facts.mta_sts
    found = [(WARNING, p) for p in sts.problems]
    if sts.mode in ("enforce", "testing"):
        for _, host in facts.mx.hosts:
            if not mx_allowed(sts.mx, host):
                found.append((WARNING, f"{host} is not an mx of the MTA-STS policy of {facts.spec.domain} "
                                       f"(mode {sts.mode}): senders that enforce MTA-STS will not deliver to it"))
    return found


def judge(facts: PartnerFacts, now: datetime) -> tuple[str, list[str], list[bool | None]]:
    """The partner's status, its problems, and each address's verdict (in ``facts.addresses`` order)."""
    spec = facts.spec
    if facts.mx.nxdomain:
        return CRITICAL, [f"{spec.domain} does not exist in DNS (NXDOMAIN): mail to it bounces"], []
    if facts.mx.error:
        return UNKNOWN, [f"the MX records of {spec.domain} cannot be read: {facts.mx.error}"], []
    if facts.mx.null_mx:
        return CRITICAL, [f"{spec.domain} publishes a null MX: this domain accepts no mail"], []
    found: list[tuple[str, str]] = []
    verdicts: list[bool | None] = []
    for a in facts.addresses:
        meets, problems = judge_address(a, level=spec.require, domain=spec.domain, match=spec.match, now=now)
        verdicts.append(meets)
        found.extend(problems)
    found.extend(_sts_problems(facts))
    status = max((sev for sev, _ in found), key=_RANK.__getitem__, default=OK)
    if status == UNKNOWN and any(v is True for v in verdicts):
        status = WARNING  # one address unreachable, the others fine: a sender tries the next
    return status, [text for _, text in found], verdicts


def meets_level(facts: PartnerFacts, now: datetime) -> bool:
    """Every address of every MX meets the level (what enforcement requires)."""
    _, _, verdicts = judge(facts, now)
    return bool(verdicts) and all(v is True for v in verdicts) and not facts.mx.null_mx


def worst(statuses: list[str]) -> str:
    return max(statuses, key=_RANK.__getitem__, default=OK)


def to_json(facts: PartnerFacts, now: datetime) -> dict[str, Any]:
    """The ``partners --json`` object for one partner."""
    status, problems, verdicts = judge(facts, now)
    mx: list[dict[str, Any]] = []
    for a, meets in zip(facts.addresses, verdicts, strict=True):
        p, cert = a.probe, a.probe.certificate if a.probe else None
        names = accepted_names(facts.spec.require, a.host, facts.spec.domain, facts.spec.match)
        mx.append({
            "host": a.host,
            "preference": a.preference,
            "address": a.address,
            "starttls": p.starttls if p else None,
            "tls_version": p.tls_version if p else None,
            "certificate": None if cert is None else {
                "subject_cn": cert.subject_cn,
                "sans": list(cert.names),
                "not_after": iso(cert.not_after),
                "days_left": days_left(cert.not_after, now),
                "chain_valid": cert.chain_valid,
                "name_match": name_matches(cert.names, names),
            },
            "dane": dane_json(a),
            "meets_level": meets,
        })
    sts = facts.mta_sts
    return {
        "domain": facts.spec.domain,
        "require": facts.spec.require,
        "status": status,
        "problems": problems,
        "mx": mx,
        "mta_sts": {"mode": sts.mode, "mx": list(sts.mx), "id": sts.id, "problems": list(sts.problems)},
        "tls_rpt": list(facts.tls_rpt) if facts.tls_rpt is not None else None,
    }


def verdict(facts: PartnerFacts, now: datetime) -> tuple[bool, list[str]]:
    """(may be enforced: every address of every MX meets the level, the problems)."""
    _, problems, _ = judge(facts, now)
    return meets_level(facts, now), problems
