"""The daemon's partner check: probe every configured partner, record the verdicts in the
store, and tell people at once when an enforced partner falls below its level (and when
it meets it again).

The alert's state lives in the store (:mod:`certmgr.store.partners`): an alert is marked
sent only after every notifier of the partner accepted it, so a restart neither repeats
it nor loses it, and a failed send is tried again at the next check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from certmgr.config.model import Config, PartnerSpec
from certmgr.errors import CertmgrError
from certmgr.interfaces import Message, Notifier
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.partners.policymap import TlsPolicyDeployer
from certmgr.partners.watch import PartnerAlert, degradations, record_of, recoveries
from certmgr.store.partners import PartnerStore

log = logging.getLogger("certmgr.daemon")


def enforced_partners(specs: Sequence[PartnerSpec], deployer: Callable[[str], Any]) -> set[str]:
    """The partners whose policy is in the map of one of their deploy targets now (a refused one is
    not: mail to it is not deferred).  A map that cannot be read counts as enforcing: better a
    warning too many than an outage nobody is told about."""
    maps: dict[str, frozenset[str] | None] = {}
    for target in sorted({t for s in specs for t in s.deploy}):
        try:
            policy: TlsPolicyDeployer = deployer(target)  # [[partner]] deploy names postfix/exim only
            maps[target] = policy.tls_policy_domains()
        except CertmgrError as e:
            log.warning("partners: the TLS policy of [deploy.%s] cannot be read (%s); its partners count as "
                        "enforced", target, e)
            maps[target] = None
    return {s.domain for s in specs
            if any(maps[t] is None or s.domain in (maps[t] or ()) for t in s.deploy)}


def _send(alert: PartnerAlert, severity: str, cfg: Config, notifier: Callable[[str], Notifier]) -> bool:
    """Send through the partner's notifiers (all configured ones when it names none); True when
    every one accepted it."""
    names = alert.notify or tuple(cfg.notifies)
    ok = bool(names)
    message = Message(alert.subject, alert.body, severity=severity, facts={"partner": alert.domain})
    for name in names:
        try:
            notifier(name).send(message)
            log.info("partners: %s: %r sent via [notify.%s]", alert.domain, alert.subject, name)
        except CertmgrError as e:
            ok = False
            log.error("partners: %s: alert via [notify.%s] not sent (tried again at the next check): %s",
                      alert.domain, name, e)
    if not names:
        log.error("partners: %s: %s — no [notify.*] to send it through", alert.domain, alert.subject)
    return ok


def watch(cfg: Config, store: PartnerStore, notifier: Callable[[str], Notifier],
          deployer: Callable[[str], Any], opts: CheckOptions, now: datetime) -> str:
    """One check of every configured partner; a summary for the job's status."""
    if not cfg.partners:
        return "no [[partner]]"
    facts = check_partners(cfg.partners, opts)
    enforced = enforced_partners(cfg.partners, deployer)
    records = [record_of(f, f.spec.domain in enforced, now) for f in facts]
    store.save(records)
    before = store.states()
    open_alerts = {d for d, r in before.items() if r.alerted_at is not None}
    # an open alert counts as "did not meet it last time": told once, until it recovers
    previous = {d: d not in open_alerts for d in before}
    sent = cleared = 0
    for alert in degradations(previous, facts, enforced, now):
        log.warning("partners: %s", alert.subject)
        if _send(alert, "critical", cfg, notifier):
            store.set_alerted(alert.domain, now)
            sent += 1
    for alert in recoveries(open_alerts, facts, now):
        log.info("partners: %s", alert.subject)
        if _send(alert, "info", cfg, notifier):
            store.set_alerted(alert.domain, None)
            cleared += 1
    failing = [r for r in records if not r.meets]
    log.info("partners: %d checked, %d below their level", len(records), len(failing))
    for r in failing:
        log.warning("partners: %s does not meet '%s': %s", r.domain, r.require, "; ".join(r.problems))
    return (f"{len(facts)} partners checked, {len(failing)} below their level"
            + (f", {sent} alerts sent" if sent else "") + (f", {cleared} recoveries sent" if cleared else ""))
