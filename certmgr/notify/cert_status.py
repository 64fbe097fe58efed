"""Where a managed certificate stands, as the notifications see it: the facts every message
and calendar invitation is built from, what a person runs to fix it, and how urgent it is."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

#: at or below this many days left, every message is critical
CRITICAL_DAYS = 3


@dataclass(frozen=True)
class CertStatus:
    """Where one managed certificate stands (state, expiry, errors): what the messages and the
    calendar say about it.  What a certificate itself says is :class:`certmgr.pki.certs.CertFacts`."""

    hostname: str
    names: tuple[str, ...]
    key_type: str  # "rsa-2048", "ecdsa-p256", ... (or just "rsa" / "ecdsa")
    issuer: str  # the [issuer.NAME] this MTA uses
    serial: str | None  # hex; None before the first certificate
    not_after: datetime | None  # aware, UTC
    days_left: int | None
    state: str  # lifecycle state ("verified", "failed", ...)
    last_error: str | None
    attempts: int  # failed attempts since the last success
    automatic: bool  # False for manual-CA issuers (csr / import)
    next_retry: datetime | None
    config_path: str
    #: where the certificate's files are, for a person who installs them by hand
    fullchain_path: str | None = None
    key_path: str | None = None
    #: when certmgr means to renew it (None: not known, or not automatic)
    renew_at: datetime | None = None

    @property
    def key_alg(self) -> str:
        """"rsa" or "ecdsa": one certificate per algorithm and MTA."""
        return self.key_type.split("-", 1)[0].lower()


#: one certificate, or all those of one MTA that a message is about
Certs = CertStatus | Sequence[CertStatus]


@dataclass(frozen=True)
class NewCert:
    """One new certificate of a success notice: how it came and what it replaced."""

    facts: CertStatus
    source: str = "acme"  # acme | import
    replaced_not_after: datetime | None = None  # None: the first certificate of this MTA and algorithm


@dataclass(frozen=True)
class Deployed:
    """Where the new certificates of an MTA went: per configured target, its last result."""

    targets: tuple[str, ...] = ()  # the MTA's deploy targets; () = none configured
    #: target -> (verified | rolled_back | failed | blocked, reason); a target missing: not tried yet
    results: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Nothing left to wait for: no target, or a result from every one."""
        return all(t in self.results for t in self.targets)


def fix_commands(facts: CertStatus) -> list[str]:
    """The shell commands a person runs to renew this certificate by hand."""
    cfg = shlex.quote(facts.config_path)
    host = shlex.quote(facts.hostname)
    if facts.automatic:
        return [f"certmgr -c {cfg} renew {host} --force"]
    return [
        f"certmgr -c {cfg} csr {host} > {shlex.quote(facts.hostname + '.csr')}",
        "# have the CA sign the CSR, then:",
        f"certmgr -c {cfg} import {host} <certificate-file>",
    ]


def severity_for(facts: CertStatus, *, escalated: bool = False) -> str:
    if escalated or (facts.days_left is not None and facts.days_left <= CRITICAL_DAYS):
        return "critical"
    return "warning"
