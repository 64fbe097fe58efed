"""The daemon's jobs (renew, probe, remind, ARI refresh) and the metrics it serves.

Each job is a plain function of a :class:`~certmgr.runtime.Runtime`; the
scheduler (:mod:`certmgr.service.daemon`) runs them and records their state.  Every
action is one log line (journald keeps them); nothing secret is logged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from certmgr.errors import CertmgrError
from certmgr.interfaces import IssueContext, RenewalInfoSource
from certmgr.notify import outbox, reminders
from certmgr.runtime import Runtime
from certmgr.service.metrics import metrics_registry as metrics_registry  # the daemon serves it
from certmgr.store import utcnow
from certmgr.store.decisions import Decisions

log = logging.getLogger("certmgr.daemon")

StopCheck = Callable[[], bool]


def renew_job(rt: Runtime, should_stop: StopCheck) -> str:
    from certmgr.lifecycle.renew import Unchanged, renew_many

    unchanged = Unchanged()
    outcomes = renew_many(rt, [], unchanged=unchanged)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
        if o.action not in ("not-due",):
            log_fn = log.warning if o.failed else log.info
            log_fn("renew: %s (%s): %s%s", o.hostname, o.key_alg, o.action, f": {o.message}" if o.message else "")
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing configured"
    log.info("renew: %d certificates checked: %s", len(outcomes), summary)
    # failed renewals are per certificate (status, metrics, reminders); the job itself ran
    if not should_stop():
        remind_job(rt, should_stop, inventory=unchanged.take())
    return summary


def remind_job(rt: Runtime, should_stop: StopCheck, *, inventory: Decisions | None = None) -> str:
    """Queue and send the reminders due now (``inventory``: every slot as the renewal run just
    before read it, when it changed none)."""
    out = reminders.process(rt, should_stop=should_stop, inventory=inventory)
    sent = sum(1 for o in out if o.action == "sent")
    failed = sum(1 for o in out if o.failed)
    if out:
        log.info("remind: %d sent, %d still queued after a failed send", sent, failed)
    if failed:
        raise CertmgrError(f"{failed} reminder(s) could not be sent and stay queued")
    return f"{sent} reminders sent"


def probe_job(rt: Runtime, should_stop: StopCheck, now: datetime | None = None) -> str:
    """Probe every configured MTA; a change to WARNING/CRITICAL (or back to OK) notifies people."""
    from certmgr.notify.alerts import queue_probe_notices
    from certmgr.probe.check import probe_all

    now = now or utcnow()
    reports = probe_all(rt, now)
    counts: dict[str, int] = {}
    for r in reports:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r["status"] != "ok":
            log.warning("probe: %s%s is %s: %s", r["target"], f" ({r['key_alg']})" if r.get("key_alg") else "",
                        r["status"].upper(), "; ".join(r["problems"]))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing configured"
    queued = queue_probe_notices(rt, reports, now)
    log.info("probe: %d targets: %s; %d notices queued", len(reports), summary, queued)
    if should_stop():
        return summary
    out: list[outbox.ReminderOutcome] = []
    outbox.send_pending(rt, now, out, should_stop)
    failed = sum(1 for o in out if o.failed)
    if failed:
        raise CertmgrError(f"{failed} notice(s) could not be sent and stay queued")
    return summary


def ari_job(rt: Runtime, should_stop: StopCheck, now: datetime | None = None) -> str:
    """Ask the CA for renewal windows (RFC 9773) where it offers them and the last answer is stale."""
    from certmgr.lifecycle.issue import renew_at_for

    now = now or utcnow()
    asked = changed = 0
    config = rt.mta_of
    issuers = {name: rt.providers.issuer(name) for name in dict.fromkeys(m.issuer for m in rt.config.mtas)}
    if not any(isinstance(i, RenewalInfoSource) for i in issuers.values()):
        return "0 asked, 0 changed"  # no issuer offers renewal information: nothing to read
    versions = rt.store.current_versions()  # every slot's, in one query
    for slot in rt.store.slots():
        mta = config.get(slot.slot_key)
        if mta is None or slot.issuer != mta.issuer:
            continue  # not configured (any more), or not synced yet: the renew job handles it
        if should_stop():
            break
        assert slot.id is not None
        issuer = issuers[mta.issuer]
        version = versions.get(slot.id)
        if not isinstance(issuer, RenewalInfoSource) or version is None or version.revoked_at is not None:
            continue
        if slot.ari_retry_at is not None and now < slot.ari_retry_at:
            continue
        ctx = IssueContext(hostname=mta.hostname, load_account=functools.partial(rt.load_account, mta.issuer),
                           save_account=rt.save_account, timeout=60)
        retry = now + timedelta(seconds=rt.config.daemon.ari_interval)
        asked += 1
        try:
            window = issuer.renewal_info(Path(version.fullchain_path or version.cert_path).read_bytes(), ctx)
        except (CertmgrError, OSError) as e:
            log.warning("ari: %s (%s): renewal information unavailable (%s); asking again at %s",
                        mta.hostname, slot.key_alg, e, f"{retry:%H:%M} UTC")
            rt.store.update_slot(slot.id, ari_retry_at=retry)
            continue
        if window is None:
            rt.store.update_slot(slot.id, ari_retry_at=retry)
            continue
        if window.retry_after is not None and window.retry_after > now:
            retry = window.retry_after
        fields: dict[str, object] = {"ari_retry_at": retry}
        if (version.ari_start, version.ari_end) != (window.start, window.end):
            assert version.id is not None
            rt.store.update_version(version.id, ari_start=window.start, ari_end=window.end)
            version.ari_start, version.ari_end = window.start, window.end
            fields["renew_at"] = renew_at_for(mta, version, f"{slot.hostname}/{slot.key_alg}/{version.serial}")
            changed += 1
            log.info("ari: %s (%s): CA suggests renewing between %s and %s; renews at %s", mta.hostname,
                     slot.key_alg, f"{window.start:%Y-%m-%d %H:%M}", f"{window.end:%Y-%m-%d %H:%M}",
                     f"{fields['renew_at']:%Y-%m-%d %H:%M} UTC")
        rt.store.update_slot(slot.id, **fields)
    if asked:
        log.info("ari: asked for %d certificates, %d windows changed", asked, changed)
    return f"{asked} asked, {changed} changed"


def collect_job(rt: Runtime, should_stop: StopCheck) -> str:
    """What ``certmgr collect`` does: read what is new in the mail logs and TLS reports."""
    from certmgr.monitor.commands import collect
    from certmgr.store.monitor import MonitorStore

    if rt.config.monitor is None:
        return "no [monitor] table"
    summary = collect(rt.config.monitor, MonitorStore(rt.store), now=utcnow())
    sessions = sum(r.sessions for r in summary.logs)
    lines = sum(r.lines for r in summary.logs)
    for r in summary.logs:
        if r.position_lost:
            log.warning("collect: %s: the last read position was not found; read from the start", r.source)
    stored = len(summary.tlsrpt.stored) if summary.tlsrpt else 0
    for name, reason in summary.tlsrpt.refused if summary.tlsrpt else ():
        log.warning("collect: TLS report %s refused: %s", name, reason)
    log.info("collect: %d sessions from %d new lines, %d TLS reports", sessions, lines, stored)
    if summary.errors:
        raise CertmgrError("; ".join(summary.errors))
    # the periodic report goes out after the collect that makes it due, with what it read
    from certmgr.notify.tls_alerts import send_alerts
    from certmgr.notify.tls_report import send_if_due

    alerts = send_alerts(rt, utcnow())
    sent = send_if_due(rt, utcnow())
    return (f"{sessions} sessions, {stored} TLS reports" + (f", {alerts} alerts sent" if alerts else "")
            + (f"; {sent}" if sent else ""))


def partner_job(rt: Runtime, should_stop: StopCheck) -> str:
    """Check every [[partner]]; an enforced one that falls below its level is alerted at once."""
    from certmgr.partners.check import CheckOptions
    from certmgr.partners.watching import watch
    from certmgr.store.partners import PartnerStore

    return watch(rt.config, PartnerStore(rt.store), rt.providers.notifier, rt.providers.deployer,
                 CheckOptions.from_settings(rt.config.settings), utcnow())
