"""Reminders before expiry and alerts on failure, by every configured notifier — never silent.

Two steps, both safe to run from several processes or nodes at once:

1. *queue*: decide what is due (:func:`due_reminders`, pure) and insert one
   reminder row per (certificate version, kind, notifier).  The row is unique,
   so whoever inserts it second learns it is queued already; the message is
   rendered into the row, so what was decided is what is sent.
2. *send*: claim each pending row (conditional UPDATE), send it, mark it sent.
   A failed send keeps it queued with the error; it goes out when the relay is back.

Calendar invitations (``calendar = true``): one event per MTA certificate and
notifier, its UID kept in the store; a new certificate version sends an update
(SEQUENCE + 1, new DTSTART), a certificate no longer in the config a CANCEL.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certmgr import calendar, messages
from certmgr.config import MtaConfig, NotifyConfig
from certmgr.errors import CertmgrError, NotifyError
from certmgr.interfaces import Attachment, Message
from certmgr.reminder_policy import Due, ReminderFacts, due_reminders
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, ManagedCert, queue, utcnow
from certmgr.store.models import CalendarEvent, Reminder

log = logging.getLogger("certmgr.reminders")

CLAIM_SECONDS = 300.0


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class ReminderOutcome:
    hostname: str
    key_alg: str
    notifier: str
    kind: str
    action: str  # queued | sent | failed | dropped | would-queue | pending
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass
class _Ctx:
    rt: Runtime
    now: datetime
    dry_run: bool
    out: list[ReminderOutcome]


def process(rt: Runtime, now: datetime | None = None, *, dry_run: bool = False,
            should_stop: Callable[[], bool] = lambda: False) -> list[ReminderOutcome]:
    """Queue every reminder and calendar message due now, then send what is pending.

    With ``dry_run`` nothing is queued or sent: the result lists what would be
    queued and what waits in the queue.  Failed sends stay queued (action "failed").
    """
    ctx = _Ctx(rt, now or utcnow(), dry_run, [])
    _queue_due(ctx)
    if dry_run:
        by_id = {s.id: s for s in rt.store.slots()}
        for r in queue.unsent_reminders(rt.store):
            slot = by_id.get(r.managed_id)
            ctx.out.append(ReminderOutcome(slot.hostname if slot else "?", slot.key_alg if slot else "?",
                                           r.notifier, r.kind, "pending", r.last_error or "queued"))
    else:
        send_pending(rt, ctx.now, ctx.out, should_stop)
    return ctx.out


def facts_for(rt: Runtime, slot: ManagedCert, version: CertVersion | None, automatic: bool,
              now: datetime) -> messages.CertFacts:
    return messages.CertFacts(
        hostname=slot.hostname,
        names=tuple(json.loads(version.names if version else slot.names)),
        key_type=slot.key_type,
        issuer=slot.issuer,
        serial=version.serial if version else None,
        not_after=version.not_after if version else None,
        days_left=int((version.not_after - now).total_seconds() // 86400) if version else None,
        state=slot.state,
        last_error=slot.last_error,
        attempts=slot.attempts,
        automatic=automatic,
        next_retry=slot.next_retry_at,
        config_path=str(rt.config.path),
    )


# ---------------------------------------------------------------------- queueing


def _queue_due(ctx: _Ctx) -> None:
    rt = ctx.rt
    config = {(m.hostname, alg): m for m in rt.config.mtas for alg in _algs(m)}
    slots = rt.store.slots()
    managed = [(config[(s.hostname, s.key_alg)], s) for s in slots if (s.hostname, s.key_alg) in config]
    versions = queue.current_versions(rt.store, (s.current_version_id for _, s in managed))
    already = queue.queued_kinds(rt.store, (s.id for _, s in managed if s.id is not None))
    deploy_failures = rt.store.failed_deployments([s.id for _, s in managed if s.id is not None])
    events = {(e.managed_id, e.notifier): e for e in queue.calendar_events(rt.store)}
    automatic: dict[str, bool] = {}
    for mta, slot in managed:
        assert slot.id is not None
        if mta.issuer not in automatic:
            automatic[mta.issuer] = bool(getattr(rt.providers.issuer(mta.issuer), "automatic", True))
        version = versions.get(slot.current_version_id or -1)
        auto = automatic[mta.issuer]
        rf = ReminderFacts(not_after=version.not_after if version else None, renew_at=slot.renew_at,
                           automatic=auto, last_result=slot.last_result, attempts=slot.attempts,
                           permanent=slot.last_error_permanent,
                           version_created=version.created_at if version else None,
                           deploy_failures=deploy_failures.get((slot.id, slot.current_version_id or -1), 0))
        vkey = version.serial if version else "none"
        facts: messages.CertFacts | None = None
        for name in mta.notify:
            nc = rt.config.notifies[name]
            invite = _calendar_for(ctx, nc, slot, version, events, auto, already) if version else None
            sent = already.get((slot.id, vkey, name), set())
            for due in due_reminders(rf, nc.reminders, nc.on_success, ctx.now, sent):
                facts = facts or facts_for(rt, slot, version, auto, ctx.now)
                msg = _message(rt, due, facts, slot, ctx.now)
                _queue(ctx, slot, vkey, due.kind, name, msg, invite)
    _cancel_removed(ctx, slots, config, events)


def _algs(mta: MtaConfig) -> list[str]:
    from certmgr.config import KEY_TYPES

    return [KEY_TYPES[k][0] for k in mta.key_types]


def _message(rt: Runtime, due: Due, facts: messages.CertFacts, slot: ManagedCert, now: datetime) -> Message:
    if due.threshold is not None:
        return messages.reminder_message(facts, due.threshold, now)
    if due.kind == "success":
        assert slot.id is not None
        older = rt.store.versions(slot.id)[1:2]  # newest first: [1] is the one it replaced
        return messages.success_message(facts, older[0].not_after if older else None, now)
    if due.kind.startswith("deploy:"):
        return messages.deploy_failure_message(facts, slot.last_error or "unknown error", due.level, now)
    return messages.failure_message(facts, slot.last_error or "unknown error", due.level, now)


def _queue(ctx: _Ctx, slot: ManagedCert, vkey: str, kind: str, notifier: str, msg: Message,
           invite: Attachment | None) -> None:
    assert slot.id is not None
    if invite is not None:
        msg = Message(**{**msg.__dict__, "attachments": (*msg.attachments, invite)})
    if ctx.dry_run:
        ctx.out.append(ReminderOutcome(slot.hostname, slot.key_alg, notifier, kind, "would-queue",
                                       msg.subject))
        return
    if queue.queue_reminder(ctx.rt.store, slot.id, vkey, kind, notifier, dump_message(msg), ctx.now):
        log.info("%s (%s): queued %s reminder for [notify.%s] (serial %s)", slot.hostname, slot.key_alg, kind,
                 notifier, vkey)


# ---------------------------------------------------------------------- calendar


def _calendar_for(ctx: _Ctx, nc: NotifyConfig, slot: ManagedCert, version: CertVersion,
                  events: dict[tuple[int, str], CalendarEvent], automatic: bool,
                  already: dict[tuple[int, str, str], set[str]]) -> Attachment | None:
    """The invitation to attach for this certificate (None without ``calendar``).

    Creates the event on first sight and advances it (SEQUENCE + 1, conditional,
    so one process does it) when the certificate changed; the calendar message of
    each sequence is queued once (and again after a crash between the two steps).
    """
    if not nc.calendar:
        return None
    assert slot.id is not None
    rt, now = ctx.rt, ctx.now
    dtstart = version.not_after - calendar.LEAD_TIME
    event = events.get((slot.id, nc.name))
    sequence: int | None
    if event is None:
        sequence = 0
        if not ctx.dry_run:
            created = queue.create_calendar_event(rt.store, slot.id, nc.name,
                                                  calendar.event_uid(slot.hostname, slot.key_alg),
                                                  version.serial, dtstart, now)
            sequence = 0 if created is not None else None  # None: another process sends it
    elif event.version_key != version.serial or event.method == "CANCEL":
        sequence = event.sequence + 1
        if not ctx.dry_run:
            assert event.id is not None
            sequence = queue.advance_calendar_event(rt.store, event.id, event.version_key, event.sequence,
                                                    version.serial, dtstart, "REQUEST", now)
    else:
        sequence = event.sequence
    if sequence is None:
        return None
    facts = facts_for(rt, slot, version, automatic, now)
    invite = _invite(nc, facts, "REQUEST", sequence, now)
    vkey = f"{version.serial}#seq{sequence}"
    if "calendar:REQUEST" not in already.get((slot.id, vkey, nc.name), set()):
        what = "invitation" if sequence == 0 else f"update (sequence {sequence})"
        msg = Message(subject=f"[certmgr] {slot.hostname}: renewal date in your calendar "
                              f"(certificate expires {version.not_after:%Y-%m-%d})",
                      text=f"The attached calendar {what} marks when the TLS certificate of {slot.hostname} "
                           f"({slot.key_alg}, serial {version.serial}) must be renewed at the latest: "
                           f"{dtstart:%Y-%m-%d %H:%M} UTC, one week before it expires.\n",
                      severity="info", hostname=slot.hostname,
                      facts={"kind": "calendar", "sequence": sequence})
        _queue(ctx, slot, vkey, "calendar:REQUEST", nc.name, msg, invite)
    return invite


def _invite(nc: NotifyConfig, facts: messages.CertFacts, method: str, sequence: int,
            now: datetime) -> Attachment:
    sender = str(nc.options.get("from", "certmgr@localhost"))
    attendees = [str(a) for a in nc.options.get("to", [])] if isinstance(nc.options.get("to"), list) else []
    ics = calendar.renewal_event_ics(facts, method=method, sequence=sequence, organizer=sender,
                                     attendees=attendees, now=now)
    return Attachment(f"renew-{facts.hostname}-{facts.key_alg}.ics", f"text/calendar; method={method}", ics)


def _cancel_removed(ctx: _Ctx, slots: list[ManagedCert], config: dict[tuple[str, str], MtaConfig],
                    events: dict[tuple[int, str], CalendarEvent]) -> None:
    """Certificates no longer in the config (MTA removed): cancel their calendar events."""
    rt = ctx.rt
    gone = {s.id: s for s in slots if (s.hostname, s.key_alg) not in config}
    for (managed_id, name), event in events.items():
        slot = gone.get(managed_id)
        if slot is None or event.method == "CANCEL":
            continue
        nc = rt.config.notifies.get(name)
        version = rt.store.version(slot.current_version_id)
        if nc is None or version is None:
            log.warning("%s (%s): no longer configured, but [notify.%s] is gone too: its calendar event "
                        "%s cannot be cancelled", slot.hostname, slot.key_alg, name, event.uid)
            continue
        sequence: int | None = event.sequence + 1
        if not ctx.dry_run:
            assert event.id is not None
            sequence = queue.advance_calendar_event(rt.store, event.id, event.version_key, event.sequence,
                                                    event.version_key, version.not_after - calendar.LEAD_TIME,
                                                    "CANCEL", ctx.now)
        if sequence is None:
            continue
        facts = facts_for(rt, slot, version, True, ctx.now)
        invite = _invite(nc, facts, "CANCEL", sequence, ctx.now)
        msg = Message(subject=f"[certmgr] {slot.hostname}: no longer managed, renewal event cancelled",
                      text=f"{slot.hostname} ({slot.key_alg}) was removed from {rt.config.path}; certmgr no "
                           "longer renews or watches its certificate. The calendar event is cancelled.\n",
                      severity="info", hostname=slot.hostname, facts={"kind": "calendar-cancel"})
        _queue(ctx, slot, f"{event.version_key}#seq{sequence}", "calendar:CANCEL", name, msg, invite)


# ---------------------------------------------------------------------- sending


def send_pending(rt: Runtime, now: datetime, out: list[ReminderOutcome],
                 should_stop: Callable[[], bool] = lambda: False) -> None:
    by_id = {s.id: s for s in rt.store.slots()}
    down: dict[str, str] = {}  # notifier -> error: skip its other messages this round
    for r in queue.pending_reminders(rt.store, now):
        if should_stop():
            break
        assert r.id is not None
        slot = by_id.get(r.managed_id)
        host, alg = (slot.hostname, slot.key_alg) if slot else ("?", "?")
        if r.notifier in down:
            out.append(ReminderOutcome(host, alg, r.notifier, r.kind, "failed", down[r.notifier]))
            continue
        if not queue.claim_reminder(rt.store, r.id, rt.node, CLAIM_SECONDS, now):
            continue  # another process is sending it
        drop = _stale(rt, r, slot)
        if drop:
            queue.mark_sent(rt.store, r.id, rt.node, now, note=f"not sent: {drop}")
            out.append(ReminderOutcome(host, alg, r.notifier, r.kind, "dropped", drop))
            continue
        try:
            rt.providers.notifier(r.notifier).send(_load(r.payload))
        except CertmgrError as e:
            err = str(e) if isinstance(e, NotifyError) else f"{e.__class__.__name__}: {e}"
            queue.mark_failed(rt.store, r.id, rt.node, err)
            down[r.notifier] = err
            log.warning("%s (%s): %s reminder via [notify.%s] not sent, stays queued (attempt %d): %s",
                        host, alg, r.kind, r.notifier, r.attempts + 1, err)
            out.append(ReminderOutcome(host, alg, r.notifier, r.kind, "failed", err))
            continue
        queue.mark_sent(rt.store, r.id, rt.node, utcnow())
        log.info("%s (%s): sent %s reminder via [notify.%s]", host, alg, r.kind, r.notifier)
        out.append(ReminderOutcome(host, alg, r.notifier, r.kind, "sent"))


def _stale(rt: Runtime, r: Reminder, slot: ManagedCert | None) -> str | None:
    """Why a queued message is no longer worth sending, or None."""
    if r.notifier not in rt.config.notifies:
        return f"[notify.{r.notifier}] is no longer configured"
    if slot is None or not r.kind.startswith(("threshold:", "failure:", "deploy:")):
        return None
    current = rt.store.version(slot.current_version_id)
    if (current.serial if current else "none") != r.version_key:
        return "the certificate was replaced since"
    if r.kind.startswith("failure:") and slot.last_result == "success":
        return "the renewal succeeded since"
    if r.kind.startswith("deploy:") and slot.state == "verified":
        return "the deployment succeeded since"
    return None


def dump_message(msg: Message) -> str:
    data: dict[str, Any] = {
        "subject": msg.subject, "text": msg.text, "html": msg.html, "severity": msg.severity,
        "hostname": msg.hostname, "facts": dict(msg.facts),
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "data": base64.b64encode(a.data).decode()} for a in msg.attachments],
    }
    return json.dumps(data, default=str)


def _load(payload: str) -> Message:
    d = json.loads(payload)
    atts = tuple(Attachment(a["filename"], a["content_type"], base64.b64decode(a["data"]))
                 for a in d.get("attachments", []))
    return Message(subject=d["subject"], text=d["text"], html=d.get("html"),
                   severity=d.get("severity", "info"), hostname=d.get("hostname"), attachments=atts,
                   facts=d.get("facts", {}))
