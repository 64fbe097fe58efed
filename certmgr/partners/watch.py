"""Watching partners: tell people the moment an enforced partner falls below its level,
and export one set of metrics per partner.

Pure functions of the previous verdicts, the new facts and ``now``.  An alert is
raised on the transition only (meets → fails), so a daily re-check does not repeat
it; it names the exact problem and the two ways out, before the queue fills.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from certmgr.partners.assess import judge, meets_level, verdict
from certmgr.partners.model import PartnerFacts
from certmgr.probe.assess import EXIT_CODES

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


@dataclass(frozen=True)
class PartnerAlert:
    domain: str
    notify: tuple[str, ...]
    subject: str
    body: str


def degradations(previous: Mapping[str, bool], facts: Sequence[PartnerFacts], enforced: Iterable[str],
                 now: datetime) -> list[PartnerAlert]:
    """Alerts for enforced partners that met their level at the last check and no longer do."""
    enforced = set(enforced)
    alerts = []
    for f in facts:
        spec = f.spec
        meets, problems = verdict(f, now)
        if meets or spec.domain not in enforced or previous.get(spec.domain) is False:
            continue
        if spec.require == "encrypt":
            lower = (f"2. Stop enforcing: remove the [[partner]] table of {spec.domain} and run `certmgr deploy`; "
                     "mail flows again, in plain text if need be.\n")
        else:
            lower = (f"2. Lower the level: set require = \"encrypt\" (or a level the partner meets) for "
                     f"{spec.domain} and run `certmgr deploy`; mail flows again, with weaker protection.\n")
        body = (
            f"certmgr enforces '{spec.require}' TLS for mail to {spec.domain}, and the partner no longer meets it:\n\n"
            + "".join(f"- {p}\n" for p in problems)
            + f"\nMail to {spec.domain} is deferred and waits in the queue until this is fixed or the queue "
              "lifetime ends (Postfix: maximal_queue_lifetime, 5 days by default), then bounces.\n\n"
              "Two choices:\n"
              "1. Wait for the partner to fix it: tell their postmaster the problem above.\n"
            + lower
        )
        alerts.append(PartnerAlert(spec.domain, spec.notify,
                                   f"[certmgr] mail to {spec.domain} is deferred: its MX no longer meets "
                                   f"'{spec.require}'", body))
    return alerts


def current_verdicts(facts: Sequence[PartnerFacts], now: datetime) -> dict[str, bool]:
    """What to remember for the next :func:`degradations`."""
    return {f.spec.domain: meets_level(f, now) for f in facts}


def add_metrics(registry: CollectorRegistry, facts: Sequence[PartnerFacts], enforced: Iterable[str],
                now: datetime) -> None:
    """Per-partner gauges in ``registry`` (the core's metrics registry)."""
    from prometheus_client import Gauge

    enforced = set(enforced)
    status = Gauge("certmgr_partner_status", "Partner TLS check: 0 ok, 1 warning, 2 critical, 3 unknown",
                   ["domain", "require"], registry=registry)
    meets = Gauge("certmgr_partner_meets_level", "1 when every MX address meets the required TLS level",
                  ["domain", "require"], registry=registry)
    enf = Gauge("certmgr_partner_enforced", "1 when the partner's TLS policy is enforced by certmgr",
                ["domain"], registry=registry)
    failing = Gauge("certmgr_partner_mx_failing", "MX addresses that do not meet the required level",
                    ["domain"], registry=registry)
    expiry = Gauge("certmgr_partner_certificate_not_after_timestamp_seconds",
                   "When the certificate an MX address serves expires", ["domain", "mx", "address"],
                   registry=registry)
    for f in facts:
        s, _, verdicts = judge(f, now)
        labels = (f.spec.domain, f.spec.require)
        status.labels(*labels).set(EXIT_CODES[s])
        meets.labels(*labels).set(1 if meets_level(f, now) else 0)
        enf.labels(f.spec.domain).set(1 if f.spec.domain in enforced else 0)
        failing.labels(f.spec.domain).set(sum(1 for v in verdicts if v is not True))
        for a in f.addresses:
            cert = a.probe.certificate if a.probe else None
            if cert is not None and a.address:
                expiry.labels(f.spec.domain, a.host, a.address).set(cert.not_after.timestamp())
