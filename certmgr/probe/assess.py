"""Judge a probe result: monitoring status and plain sentences, and the ``check --json`` object.

Pure functions of (result, expectations, now).  Statuses follow the
monitoring-plugin convention: ``ok`` < ``warning`` < ``critical``; ``unknown``
when the service could not be reached at all, since then nothing is known about
its certificate.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from certmgr.pki.keytypes import is_weak
from certmgr.pki.names import comparable_name, covers
from certmgr.probe.client import ProbeResult
from certmgr.probe.facts import ServedCert
from certmgr.times import days_left, iso

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
_RANK = {OK: 0, WARNING: 1, CRITICAL: 2}
#: exit codes of the monitoring-plugin convention
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}


def _hostname(result: ProbeResult, expected_hostname: str | None) -> str:
    return comparable_name(expected_hostname or result.target.rsplit(":", 1)[0])


def banner_match(result: ProbeResult, expected_hostname: str | None) -> bool | None:
    """Does the SMTP banner announce the MTA hostname?  None when there is no banner host."""
    if result.banner_host is None:
        return None
    return comparable_name(result.banner_host) == _hostname(result, expected_hostname)


def matches_managed(result: ProbeResult, managed_sha256s: Collection[str] | None) -> bool | None:
    if result.certificate is None or managed_sha256s is None:
        return None
    return result.certificate.sha256.lower() in {s.lower() for s in managed_sha256s}


def _cert_problems(cert: ServedCert, host: str, now: datetime, warn_days: int,
                   crit_days: int) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    left = days_left(cert.not_after, now)
    if cert.not_after <= now:
        found.append((CRITICAL, f"certificate expired on {cert.not_after:%Y-%m-%d}"))
    elif cert.not_before > now:
        found.append((CRITICAL, f"certificate is not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC"))
    elif left < crit_days:
        found.append((CRITICAL, f"certificate expires in {left} day{'s' if left != 1 else ''}"))
    elif left < warn_days:
        found.append((WARNING, f"certificate expires in {left} day{'s' if left != 1 else ''}"))
    if cert.self_signed:
        found.append((CRITICAL, "certificate is self-signed"))
    elif not cert.chain_valid:
        found.append((CRITICAL, f"certificate chain does not verify: {cert.chain_error}"))
    if is_weak(cert.key_alg, cert.key_bits):
        found.append((CRITICAL, f"certificate has a weak {cert.key_alg.upper()}-{cert.key_bits} key"))
    if not covers(cert.names, host):
        found.append((CRITICAL, f"certificate does not cover {host}"))
    return found


def assess(
    result: ProbeResult,
    *,
    expected_hostname: str | None,
    managed_sha256s: Collection[str] | None,
    warn_days: int = 21,
    crit_days: int = 7,
    now: datetime,
) -> tuple[str, list[str]]:
    """Status and problems (plain sentences) for one probe result."""
    if result.unreachable:
        return UNKNOWN, [result.error or f"cannot reach {result.target}"]
    host = _hostname(result, expected_hostname)
    found: list[tuple[str, str]] = []
    if result.error is not None:
        found.append((CRITICAL, result.error))
    elif not result.starttls:
        found.append((CRITICAL, "STARTTLS is not offered to this client"))
    cert = result.certificate
    if cert is not None:
        found.extend(_cert_problems(cert, host, now, warn_days, crit_days))
    if banner_match(result, expected_hostname) is False and result.banner_host is not None:
        if cert is not None and not covers(cert.names, result.banner_host):
            covered = ", ".join(cert.names) or "no names"
            found.append(
                (WARNING, f"banner announces {result.banner_host} but the certificate covers {covered}")
            )
        else:
            found.append((WARNING, f"banner announces {result.banner_host}, not {host}"))
    if matches_managed(result, managed_sha256s) is False and cert is not None:
        found.append((WARNING, f"the served certificate (SHA-256 {cert.sha256[:16]}…) is not the one "
                               "certmgr deployed"))
    status = max((sev for sev, _ in found), key=_RANK.__getitem__, default=OK)
    return status, [text for _, text in found]


def to_json(
    result: ProbeResult,
    *,
    expected_hostname: str | None,
    managed_sha256s: Collection[str] | None,
    warn_days: int = 21,
    crit_days: int = 7,
    now: datetime,
) -> dict[str, Any]:
    """The ``check --json`` object for one target (DESIGN.md)."""
    status, problems = assess(result, expected_hostname=expected_hostname, managed_sha256s=managed_sha256s,
                              warn_days=warn_days, crit_days=crit_days, now=now)
    cert = result.certificate
    certificate: dict[str, Any] | None = None
    if cert is not None:
        certificate = {
            "subject_cn": cert.subject_cn,
            "sans": list(cert.names),
            "not_after": iso(cert.not_after),
            "days_left": days_left(cert.not_after, now),
            "key_type": cert.key_alg,
            "key_bits": cert.key_bits,
            "sha256": cert.sha256,
            "chain_valid": cert.chain_valid,
            "name_match": covers(cert.names, _hostname(result, expected_hostname)),
        }
    return {
        "target": result.target,
        "protocol": result.protocol,
        "implicit_tls": result.implicit_tls,
        "key_alg": result.key_alg,
        "banner_host": result.banner_host,
        "starttls": result.starttls,
        "tls_version": result.tls_version,
        "cipher": result.cipher,
        "certificate": certificate,
        "banner_match": banner_match(result, expected_hostname),
        "matches_managed": matches_managed(result, managed_sha256s),
        "status": status,
        "problems": problems,
    }
