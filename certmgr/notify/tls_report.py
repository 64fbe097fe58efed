"""The periodic mail TLS report (``[monitor] report = { notify = [...], every = "weekly" }``),
sent through the configured notifiers.

``report_due`` is the policy (pure, ``now`` passed in); ``send_if_due`` builds the report of
the period that ends now and hands it to every notifier of ``report.notify``.  A sent report
is an event (``tls_report_sent``) in the store: the next is due one period after it, so a
restart or a second daemon run does not send it again.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from certmgr.errors import CertmgrError
from certmgr.interfaces import Attachment, Message
from certmgr.runtime import Runtime

log = logging.getLogger("certmgr.daemon")

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
SENT = "tls_report_sent"
#: certificate events the report lists
EVENT_KINDS = ("issued", "imported", "revoked", "deploy_verified", "deploy_failed", "deploy_rolled_back",
               "renewal_failed")


def report_due(every: str, last_sent: datetime | None, now: datetime) -> bool:
    """Is a report due: never for ``off``; the first at once; then one period after the last."""
    if every not in PERIODS:
        return False
    return last_sent is None or now - last_sent >= PERIODS[every]


def _events(rt: Runtime, since: datetime, until: datetime) -> list[str]:
    out = []
    for e in rt.store.events():
        if e.kind in EVENT_KINDS and since <= e.ts < until:
            out.append(f"{e.ts:%Y-%m-%d %H:%M} UTC {e.hostname or ''} {e.kind.replace('_', ' ')}".replace("  ", " "))
    return out[-50:]


def report_message(report: dict[str, Any], previous: dict[str, Any] | None, events: list[str]) -> Message:
    from email.utils import make_msgid

    from certmgr.monitor.mail import chart_png, report_page, report_text

    inbound, outbound = report["inbound"], report["outbound"]
    cid = make_msgid("tls-trend", domain="certmgr.invalid")[1:-1]

    def pct(c: dict[str, Any]) -> str:
        return "n/a" if not c["sessions"] else f"{100 * c['tls'] / c['sessions']:.1f}%"

    return Message(
        subject=f"TLS report: inbound {pct(inbound)}, outbound {pct(outbound)} with TLS",
        text=report_text(report, previous=previous, events=events),
        html=report_page(report, previous=previous, events=events, chart_cid=cid),
        severity="warning" if report["alerts"] else "info",
        attachments=(Attachment("tls-trend.png", "image/png", chart_png(report), content_id=cid),
                     Attachment("tls-report.json", "application/json", json.dumps(report, indent=2).encode())),
        facts={"kind": "tls-report", "report": report},
    )


def send_if_due(rt: Runtime, now: datetime) -> str | None:
    """Send the report when it is due; what was done, or None when nothing was due."""
    from certmgr.monitor.report import build_report
    from certmgr.notify.tls_alerts import partner_domains
    from certmgr.store.monitor import MonitorStore

    mon = rt.config.monitor
    if mon is None or not mon.report_notify:
        return None
    sent = rt.store.events(kind=SENT)
    last = sent[-1].ts if sent else None
    if not report_due(mon.report_every, last, now):
        return None
    period = PERIODS[mon.report_every]
    storage = MonitorStore(rt.store)
    partners = partner_domains(rt)
    report = build_report(storage, now - period, now, thresholds=mon.thresholds, enforced_partners=partners)
    previous = build_report(storage, now - 2 * period, now - period, thresholds=mon.thresholds,
                            enforced_partners=partners)
    msg = report_message(report, previous, _events(rt, now - period, now))
    failed = []
    for name in mon.report_notify:
        try:
            rt.providers.notifier(name).send(msg)
            log.info("report: the %s TLS report sent via [notify.%s]", mon.report_every, name)
        except CertmgrError as e:
            failed.append(f"[notify.{name}]: {e}")
    if len(failed) == len(mon.report_notify):  # nobody got it: try again at the next run
        raise CertmgrError("the TLS report could not be sent: " + "; ".join(failed))
    rt.store.log(SENT, detail={"every": mon.report_every, "since": report["since"], "until": report["until"],
                               "failed": failed})
    for f in failed:
        log.error("report: not sent via %s", f)
    return f"TLS report sent to {len(mon.report_notify) - len(failed)} notifier(s)"
