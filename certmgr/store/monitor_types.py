"""The values of the mail TLS monitor's tables: what :mod:`certmgr.store.monitor` stores and
returns, and what :mod:`certmgr.monitor` builds and reads.  They live on the store side so
that the store never imports the monitor (the monitor imports the store, not the reverse)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, order=True)
class SessionKey:
    hour: str  # ISO 8601 UTC, truncated to the hour: "2026-11-30T03:00:00+00:00"
    direction: str
    domain: str
    level: str
    protocol: str


@dataclass(frozen=True)
class HourCount:
    key: SessionKey
    sessions: int


@dataclass(frozen=True, order=True)
class PeerKey:
    """A peer of sessions without TLS in one hour."""

    hour: str
    direction: str
    domain: str
    host: str
    address: str


@dataclass(frozen=True)
class PeerCount:
    key: PeerKey
    sessions: int


@dataclass(frozen=True)
class Failure:
    result_type: str
    sessions: int
    sending_mta_ip: str
    receiving_mx_hostname: str
    receiving_ip: str


@dataclass(frozen=True)
class PolicyResult:
    policy_type: str
    policy_domain: str
    mx_hosts: tuple[str, ...]
    successful: int
    failed: int
    failures: tuple[Failure, ...]


@dataclass(frozen=True)
class TlsReport:
    report_id: str
    organization: str
    contact: str
    start: datetime
    end: datetime
    policies: tuple[PolicyResult, ...]

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.policies)


@dataclass(frozen=True)
class TlsRptFailure:
    organization: str
    mx_host: str  # receiving-mx-hostname, "" when the report does not say
    result_type: str
    sessions: int
    end: datetime  # end of the report's date range


@dataclass(frozen=True)
class TlsRptSummary:
    reports: int
    successful: int
    failures: dict[str, int]  # result-type → failed sessions
    by_policy: dict[str, dict[str, int]]  # policy-type → {"successful": n, "failed": n}


def hour_of(when: datetime) -> str:
    """The aggregation bucket of a session time (UTC, truncated to the hour)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0).isoformat()


def hour_range(since: datetime, until: datetime) -> tuple[str, str]:
    """The first and last hour buckets that overlap ``[since, until)`` (the hour under way at
    ``until`` counts)."""
    return hour_of(since), hour_of(until - timedelta(microseconds=1))


def tlsrpt_summary(reports: int, sums: Iterable[tuple[str, str, int]]) -> TlsRptSummary:
    """The summary of ``reports`` TLS reports whose sessions summed by (policy type, result type) are ``sums``."""
    successful, failures = 0, dict[str, int]()
    by_policy: dict[str, dict[str, int]] = {}
    for ptype, rtype, n in sums:
        counts = by_policy.setdefault(ptype, {"successful": 0, "failed": 0})
        if rtype == "success":
            successful += n
            counts["successful"] += n
        else:
            failures[rtype] = failures.get(rtype, 0) + n
            counts["failed"] += n
    return TlsRptSummary(reports, successful, failures, by_policy)
