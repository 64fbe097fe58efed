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
from certmgr.store.partner_types import AddressState, PartnerRecord
from certmgr.times import utc_text

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


def recoveries(open_alerts: Iterable[str], facts: Sequence[PartnerFacts], now: datetime) -> list[PartnerAlert]:
    """The all-clear for partners whose alert is open (``open_alerts``) and that meet their level again."""
    open_alerts = set(open_alerts)
    out = []
    for f in facts:
        spec = f.spec
        if spec.domain in open_alerts and meets_level(f, now):
            out.append(PartnerAlert(
                spec.domain, spec.notify,
                f"[certmgr] mail to {spec.domain} flows again: its MX meets '{spec.require}' again",
                f"Every MX of {spec.domain} meets '{spec.require}' TLS again (checked {utc_text(now)}).\n\n"
                f"Mail deferred for {spec.domain} goes out at the MTA's next queue run "
                "(Postfix: `postqueue -f` sends it now).\n"))
    return out


def current_verdicts(facts: Sequence[PartnerFacts], now: datetime) -> dict[str, bool]:
    """What to remember for the next :func:`degradations`."""
    return {f.spec.domain: meets_level(f, now) for f in facts}


def record_of(facts: PartnerFacts, enforced: bool, now: datetime) -> PartnerRecord:
    """What a check leaves in the store (and what metrics are made of)."""
    status, problems, verdicts = judge(facts, now)
    addresses = []
    for a, meets in zip(facts.addresses, verdicts or [None] * len(facts.addresses), strict=True):
        cert = a.probe.certificate if a.probe else None
        addresses.append(AddressState(a.host, a.address, meets is True, cert.not_after if cert else None))
    return PartnerRecord(facts.spec.domain, facts.spec.require, status, meets_level(facts, now), enforced,
                         tuple(problems), tuple(addresses), now)


def add_metrics(registry: CollectorRegistry, records: Iterable[PartnerRecord]) -> None:
    """Per-partner gauges in ``registry`` (the core's metrics registry), from the stored checks:
    exporting metrics never probes a partner."""
    from prometheus_client import Gauge

    status = Gauge("certmgr_partner_status", "Partner TLS check: 0 ok, 1 warning, 2 critical, 3 unknown",
                   ["domain", "require"], registry=registry)
    meets = Gauge("certmgr_partner_meets_level", "1 when every MX address meets the required TLS level",
                  ["domain", "require"], registry=registry)
    enf = Gauge("certmgr_partner_enforced", "1 when the partner's TLS policy is enforced by certmgr",
                ["domain"], registry=registry)
    failing = Gauge("certmgr_partner_mx_failing", "MX addresses that do not meet the required level",
                    ["domain"], registry=registry)
    alerted = Gauge("certmgr_partner_alert_open", "1 while the partner's degradation alert is open",
                    ["domain"], registry=registry)
    checked = Gauge("certmgr_partner_last_check_timestamp_seconds", "When the partner was last checked",
                    ["domain"], registry=registry)
    expiry = Gauge("certmgr_partner_certificate_not_after_timestamp_seconds",
                   "When the certificate an MX address serves expires", ["domain", "mx", "address"],
                   registry=registry)
    for r in records:
        labels = (r.domain, r.require)
        status.labels(*labels).set(EXIT_CODES[r.status])
        meets.labels(*labels).set(1 if r.meets else 0)
        enf.labels(r.domain).set(1 if r.enforced else 0)
        failing.labels(r.domain).set(sum(1 for a in r.addresses if not a.meets))
        alerted.labels(r.domain).set(1 if r.alerted_at is not None else 0)
        checked.labels(r.domain).set(r.checked_at.timestamp())
        for a in r.addresses:
            if a.not_after is not None and a.address:
                expiry.labels(r.domain, a.host, a.address).set(a.not_after.timestamp())
