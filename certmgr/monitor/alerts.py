"""Alerts on mail TLS: pure functions of period counts, nothing read or sent here.

- ``plaintext-partner``: sessions without TLS to or from an enforced partner (a
  ``[[partner]]`` domain or a subdomain of one), naming the peers;
- ``tls-share-low``: the TLS share of a direction below the threshold;
- ``tlsrpt-failures``: TLS-RPT failed sessions in the period at or above the threshold;
- ``downgrade``: a domain whose sessions were all Verified in the previous
  period and now include Anonymous or plaintext ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from certmgr.config.model import PartnerSpec
from certmgr.pki.names import comparable_name
from certmgr.store.monitor_types import PeerCount


@dataclass(frozen=True)
class Thresholds:
    tls_share: float = 0.9  # alert below this share of sessions with TLS, per direction
    min_sessions: int = 20  # no share alert on fewer sessions than this
    tlsrpt_failures: int = 1  # alert at this many TLS-RPT failed sessions in the period


@dataclass(frozen=True)
class Alert:
    kind: str
    direction: str
    subject: str  # a domain, or "" for a whole direction
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()

# counts: direction → domain → level → sessions
Counts = Mapping[str, Mapping[str, Mapping[str, int]]]


def enforced_partners(partners: Iterable[PartnerSpec], enforced: Mapping[str, bool]) -> tuple[str, ...]:
    """The partner domains whose sessions must use TLS: each ``[[partner]]`` (every ``require``
    level, ``encrypt`` and up, makes TLS mandatory) except those the partner watch's last check
    did not enforce (``enforced``: domain → enforced, as the store has it); a partner not
    checked yet counts as enforced, as its config asks."""
    return tuple(p.domain for p in partners if enforced.get(p.domain, True))


def partner_of(domain: str, partners: Iterable[str]) -> str | None:
    """The partner domain ``domain`` is, or is under; None when it is no partner's."""
    for p in partners:
        if domain == p or domain.endswith("." + p):
            return p
    return None


def plaintext_with_partners(peers: Iterable[PeerCount], enforced_partners: Iterable[str]) -> list[Alert]:
    """One alert per direction and enforced partner with sessions without TLS, naming
    the peers and how many sessions each had."""
    partners = sorted({comparable_name(p) for p in enforced_partners}, key=len, reverse=True)  # longest first
    found: dict[tuple[str, str], dict[str, int]] = {}
    for row in peers:
        k = row.key
        partner = partner_of(k.domain, partners)
        if partner is not None:
            by_peer = found.setdefault((k.direction, partner), {})
            peer = f"{k.host}[{k.address}]"
            by_peer[peer] = by_peer.get(peer, 0) + row.sessions
    alerts = []
    for (direction, partner), by_peer in sorted(found.items()):
        n = sum(by_peer.values())
        to = "to" if direction == "outbound" else "from"
        peers_text = ", ".join(f"{peer} ({c})" for peer, c in sorted(by_peer.items(), key=lambda kv: (-kv[1], kv[0])))
        alerts.append(Alert("plaintext-partner", direction, partner,
                            f"{n} {direction} sessions {to} enforced partner {partner} without TLS: {peers_text}"))
    return alerts


def evaluate(current: Counts, previous: Counts, *, tlsrpt_failures: Mapping[str, int],
             plain_peers: Iterable[PeerCount] = (), enforced_partners: Iterable[str] = (),
             thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[Alert]:
    alerts = plaintext_with_partners(plain_peers, enforced_partners)
    for direction in ("inbound", "outbound"):
        domains = current.get(direction, {})
        total = sum(sum(levels.values()) for levels in domains.values())
        plain = sum(levels.get("none", 0) for levels in domains.values())
        if total >= thresholds.min_sessions and (total - plain) / total < thresholds.tls_share:
            alerts.append(Alert("tls-share-low", direction, "",
                                f"{direction} TLS share {100 * (total - plain) / total:.1f}% is below "
                                f"{100 * thresholds.tls_share:.0f}% ({plain} of {total} sessions in plaintext)"))
        before = previous.get(direction, {})
        for domain in sorted(domains):
            was = before.get(domain, {})
            if was and set(was) == {"Verified"}:
                weak = domains[domain].get("Anonymous", 0) + domains[domain].get("none", 0)
                if weak:
                    alerts.append(Alert("downgrade", direction, domain,
                                        f"{domain}: {weak} {direction} sessions Anonymous or plaintext, "
                                        "all Verified in the previous period"))
    failed = sum(tlsrpt_failures.values())
    if failed >= thresholds.tlsrpt_failures and failed > 0:
        worst = max(tlsrpt_failures, key=lambda k: tlsrpt_failures[k])
        alerts.append(Alert("tlsrpt-failures", "inbound", "",
                            f"TLS reports show {failed} failed sessions ({worst}: {tlsrpt_failures[worst]})"))
    return alerts


@dataclass(frozen=True)
class Deployment:
    host: str  # the MTA's name, as TLS reports give it in receiving-mx-hostname
    serial: str
    at: datetime


def failures_after_deployments(deployments: Iterable[Deployment], failures: Iterable[Any]) -> list[Alert]:
    """TLS-RPT failures at an MTA in reports ending after its latest deployment, one alert per
    deployment, reporting organization and result type: "since serial 4c64… was deployed on
    mx2 at 10:02, 312 sessions from google.com failed with certificate-host-mismatch".
    ``failures``: ``TlsRptFailure``s (organization, mx_host, result_type, sessions, end)."""
    latest: dict[str, Deployment] = {}
    for d in deployments:
        host = comparable_name(d.host)
        if host not in latest or d.at > latest[host].at:
            latest[host] = d
    totals: dict[tuple[str, str, str], int] = {}
    for f in failures:
        dep = latest.get(f.mx_host)
        if dep is not None and f.end > dep.at:
            key = (f.mx_host, f.organization, f.result_type)
            totals[key] = totals.get(key, 0) + f.sessions
    alerts = []
    for (host, org, result_type), n in sorted(totals.items(), key=lambda kv: -kv[1]):
        d = latest[host]
        alerts.append(Alert("tlsrpt-after-deployment", "inbound", host,
                            f"since serial {d.serial[:8]}… was deployed on {host} at {d.at:%Y-%m-%d %H:%M} UTC, "
                            f"{n} sessions from {org} failed with {result_type}"))
    return alerts
