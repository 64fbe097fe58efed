"""The daemon's partner check: probe every configured partner, record the verdicts in the
store, and tell people at once when an enforced partner falls below its level (and when
it meets it again).

The alert's state lives in the store (:mod:`certmgr.store.partners`): an alert is marked
sent only after every notifier of the partner accepted it, so a restart neither repeats
it nor loses it, and a failed send is tried again at the next check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from certmgr.config.model import Config, PartnerSpec
from certmgr.errors import CertmgrError
from certmgr.interfaces import Message, Notifier
from certmgr.partners.check import CheckOptions, check_partners
from certmgr.partners.watch import PartnerAlert, degradations, record_of, recoveries
from certmgr.store.partners import PartnerStore

log = logging.getLogger("certmgr.daemon")


def enforced(spec: PartnerSpec) -> bool:
    """A partner with deploy targets has its level enforced there (certmgr deploy/renew install it)."""
    return bool(spec.deploy)


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


def watch(cfg: Config, store: PartnerStore, notifier: Callable[[str], Notifier], opts: CheckOptions,
          now: datetime) -> str:
    """One check of every configured partner; a summary for the job's status."""
    if not cfg.partners:
        return "no [[partner]]"
    facts = check_partners(cfg.partners, opts)
    records = [record_of(f, enforced(f.spec), now) for f in facts]
    store.save(records)
    before = store.states()
    open_alerts = {d for d, r in before.items() if r.alerted_at is not None}
    # an open alert counts as "did not meet it last time": told once, until it recovers
    previous = {d: d not in open_alerts for d in before}
    sent = cleared = 0
    for alert in degradations(previous, facts, [f.spec.domain for f in facts if enforced(f.spec)], now):
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
