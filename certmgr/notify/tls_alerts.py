"""Mail TLS alerts sent through the notifiers of ``[monitor] report.notify``.

After each collect, the alerts of the last day (compared with the day before, see
:mod:`certmgr.monitor.alerts`) and the TLS-RPT failures at an MTA since its latest verified
deployment are sent, each at most once a day: a sent alert is an event
(``tls_alert_sent``) keyed by its kind, direction and subject.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from certmgr.errors import CertmgrError
from certmgr.interfaces import Message
from certmgr.monitor.alerts import Alert, Deployment, enforced_partners, failures_after_deployments
from certmgr.runtime import Runtime

log = logging.getLogger("certmgr.daemon")

SENT = "tls_alert_sent"
WINDOW = timedelta(days=1)
#: how far back TLS-RPT failures are tied to deployments
TLSRPT_WINDOW = timedelta(days=7)


def alert_key(a: Alert) -> str:
    return f"{a.kind}|{a.direction}|{a.subject}"


def to_send(alerts: Iterable[Alert], sent_recently: set[str]) -> list[Alert]:
    """The alerts not sent within the window, each once."""
    out, seen = [], set(sent_recently)
    for a in alerts:
        if alert_key(a) not in seen:
            seen.add(alert_key(a))
            out.append(a)
    return out


def partner_domains(rt: Runtime) -> tuple[str, ...]:
    """The enforced partner domains of the config, with the partner watch's verdicts."""
    from certmgr.store.practice_rows import partner_states

    states = partner_states(rt.rows)  # the read path: `status` imports no ORM
    return enforced_partners(rt.config.partners, {d: r.enforced for d, r in states.items()})


def current_alerts(rt: Runtime, now: datetime) -> list[Alert]:
    from certmgr.monitor.report import build_report
    from certmgr.store.practice_rows import MonitorRows

    mon = rt.config.monitor
    assert mon is not None
    storage = MonitorRows(rt.rows)
    report = build_report(storage, now - WINDOW, now, thresholds=mon.thresholds,
                          enforced_partners=partner_domains(rt))
    alerts = [Alert(**a) for a in report["alerts"]]
    deployments = []
    wanted = {m.hostname for m in rt.config.mtas}
    verified = rt.rows.latest_deployments()  # every slot's newest verified deployment, in one query
    serials = {v.id: v.serial for history in rt.rows.history_rows().values() for v in history}
    for slot in rt.rows.slot_rows():
        if slot.hostname not in wanted or slot.id is None:
            continue
        dep = verified.get(slot.id, (None, None))[1]
        serial = serials.get(dep.version_id) if dep else None
        if dep is not None and serial is not None:
            deployments.append(Deployment(slot.hostname, serial, dep.verified_at or dep.started_at))
    return alerts + failures_after_deployments(deployments, storage.tlsrpt_failures(now - TLSRPT_WINDOW))


STATUS_COLUMNS = ("kind", "direction", "subject", "message")


def status_rows(rt: Runtime, now: datetime) -> list[dict[str, str]]:
    """The mail TLS alerts open now (those ``send_alerts`` would send, sent or not), as rows
    of ``certmgr status`` (``"type": "monitor-alert"``); none without ``[monitor]``."""
    if rt.config.monitor is None:
        return []
    return [{"type": "monitor-alert", **a.as_dict()} for a in current_alerts(rt, now)]


def send_alerts(rt: Runtime, now: datetime) -> int:
    """Send the alerts not sent in the last day; how many were sent."""
    mon = rt.config.monitor
    if mon is None or not mon.report_notify:
        return 0
    recent = {_key_of(e.detail) for e in rt.store.events(kind=SENT) if e.ts > now - WINDOW}
    sent = 0
    for a in to_send(current_alerts(rt, now), recent):
        msg = Message(subject=f"TLS alert: {a.message}", text=f"{a.message}\n\n({a.kind}, {a.direction})\n",
                      severity="warning", hostname=a.subject or None, facts={"kind": "tls-alert", **a.as_dict()})
        delivered = 0
        for name in mon.report_notify:
            try:
                rt.providers.notifier(name).send(msg)
                delivered += 1
            except CertmgrError as e:
                log.error("alert: %s not sent via [notify.%s]: %s", a.kind, name, e)
        if delivered:  # nobody got it: tried again after the next collect
            rt.store.log(SENT, detail={"key": alert_key(a), "message": a.message})
            log.warning("alert: %s", a.message)
            sent += 1
    return sent


def _key_of(detail: str) -> str:
    try:
        return str(json.loads(detail).get("key"))
    except (ValueError, AttributeError):
        return ""
