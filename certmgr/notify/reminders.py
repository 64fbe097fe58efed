"""Reminders before expiry and alerts on failure, by every configured notifier — never silent.

Two steps, both safe to run from several processes or nodes at once:

1. *queue*: decide what is due per certificate (:func:`due_reminders`, pure),
   then group by MTA: one message per (MTA, kind, notifier) covering every
   certificate of the MTA that owes it (RSA and ECDSA together).  Its row is
   unique — (slot, serial) for one certificate, (the MTA's first slot,
   ``alg:serial+alg:serial``) for several — so whoever inserts it second learns
   it is queued already; what is owed is still decided per certificate, from
   every row that covers it.  The message is rendered into the row, so what was
   decided is what is sent.  A notifier whose recipients an earlier notifier of
   the MTA reaches already skips the message.
2. *send*: claim each pending row (conditional UPDATE), send it, mark it sent.
   A failed send keeps it queued with the error; it goes out when the relay is back.

Calendar invitations (``calendar = true``): one event per MTA and notifier, its
UID kept in the store, dated by the earlier expiry and never in the past; a new
certificate sends an update (SEQUENCE + 1, new DTSTART), carried by the success
notice when there is one (both rows inserted together) and else by its own
mail; an MTA no longer in the config gets a CANCEL.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certmgr.config.model import MtaConfig, NotifyConfig
from certmgr.errors import CertmgrError, NotifyError
from certmgr.interfaces import Attachment, Message
from certmgr.notify import calendar, messages
from certmgr.notify.policy import SUCCESS_NOTICE_WINDOW, Due, ReminderFacts, due_reminders
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
        slots = rt.store.slots()
        by_id = {s.id: s for s in slots if s.id is not None}
        by_alg = {(s.hostname, s.key_alg): s for s in slots}
        for r in queue.unsent_reminders(rt.store):
            slot = by_id.get(r.managed_id)
            algs = "+".join(by_id[i].key_alg for i, _ in
                            _key_parts(r.managed_id, r.version_key.split("#", 1)[0], by_id, by_alg))
            ctx.out.append(ReminderOutcome(slot.hostname if slot else "?", algs or "?",
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
        fullchain_path=version.fullchain_path or None if version else None,
        key_path=version.key_path or None if version else None,
        renew_at=slot.renew_at,
    )


# ---------------------------------------------------------------------- queueing


def _queue_due(ctx: _Ctx) -> None:
    """One message per (MTA, event, notifier): the certificates of an MTA that owe the same
    kind of message (both algorithms crossing a threshold, both renewed) go in one."""
    rt = ctx.rt
    config = {(m.hostname, alg): m for m in rt.config.mtas for alg in _algs(m)}
    slots = rt.store.slots()
    managed = [(config[(s.hostname, s.key_alg)], s) for s in slots if (s.hostname, s.key_alg) in config]
    versions = queue.current_versions(rt.store, (s.current_version_id for _, s in managed))
    raw = queue.queued_kinds(rt.store, (s.id for s in slots if s.id is not None))
    already = _per_certificate(raw, slots)
    deploy_failures = rt.store.failed_deployments([s.id for _, s in managed if s.id is not None])
    events = queue.calendar_events(rt.store)
    host_slots: dict[str, list[ManagedCert]] = {}
    for s in slots:
        host_slots.setdefault(s.hostname, []).append(s)
    by_mta: dict[str, tuple[MtaConfig, list[ManagedCert]]] = {}
    for mta, slot in managed:
        by_mta.setdefault(mta.hostname, (mta, []))[1].append(slot)
    automatic: dict[str, bool] = {}
    for mta, group in by_mta.values():
        group.sort(key=lambda s: s.id or 0)  # the first slot of an MTA (lowest id) holds its shared rows
        if mta.issuer not in automatic:
            automatic[mta.issuer] = bool(getattr(rt.providers.issuer(mta.issuer), "automatic", True))
        auto = automatic[mta.issuer]
        certs = [_Cert(s, versions.get(s.current_version_id or -1)) for s in group]
        for cert in certs:
            cert.facts = facts_for(rt, cert.slot, cert.version, auto, ctx.now)
            cert.rf = _reminder_facts(rt, mta, cert, auto, deploy_failures, ctx.now)
        reached: dict[str, set[str]] = {}  # kind -> destinations an earlier notifier of this MTA covers
        for name in mta.notify:
            nc = rt.config.notifies[name]
            dests = _destinations(rt, name)
            dues: dict[str, list[tuple[_Cert, Due]]] = {}
            kinds: set[str] = set()  # what this notifier sends or has sent
            for cert in certs:
                assert cert.slot.id is not None and cert.rf is not None
                sent = already.get((cert.slot.id, cert.vkey, name), set())
                kinds.update(sent)
                for due in due_reminders(cert.rf, nc.reminders, nc.on_success, ctx.now, sent):
                    dues.setdefault(due.kind, []).append((cert, due))
            if nc.calendar:
                kinds.add("calendar")
            for kind in _reached(reached, kinds | set(dues), dests, name, mta.hostname):
                dues.pop(kind, None)
                if kind == "calendar":
                    nc = dataclasses.replace(nc, calendar=False)
            cal = _calendar_for(ctx, nc, mta, certs, host_slots[mta.hostname], events, raw)
            if cal is _BUSY:
                # another process is moving the event right now: it sends the notice with the
                # invitation; this one would only race it into two mails
                dues.pop("success", None)
                cal = None
            assert cal is None or isinstance(cal, _Calendar)
            # the invitation goes out once: with the success notice when there is one, else on its own
            carrier = "success" if cal is not None and cal.pending and "success" in dues else None
            for kind, items in dues.items():
                msg = _message(rt, mta, kind, items, ctx.now)
                if kind == carrier and cal is not None:
                    _queue_carrying(ctx, [c for c, _ in items], certs, kind, name, msg, cal)
                else:
                    _queue(ctx, [c for c, _ in items], kind, name, msg, None)
            if cal is not None and cal.pending and carrier is None:
                _queue(ctx, certs, "calendar:REQUEST", name, cal.message, cal.invite, vkey=cal.vkey)
    _cancel_removed(ctx, slots, {m.hostname for m in rt.config.mtas}, events)


def _destinations(rt: Runtime, name: str) -> frozenset[str]:
    """Where [notify.NAME] delivers (empty when its provider does not say)."""
    try:
        dests: object = getattr(rt.providers.notifier(name), "destinations", frozenset())
    except CertmgrError:
        return frozenset()  # it cannot be built: sending says why, and keeps the message queued
    return dests if isinstance(dests, frozenset) else frozenset()


def _reached(reached: dict[str, set[str]], kinds: set[str], dests: frozenset[str], name: str,
             host: str) -> set[str]:
    """The kinds whose every destination of this notifier gets them already from an earlier
    notifier of the MTA (two notifiers to one address send a message once); the rest are
    noted as reached."""
    skip = set()
    for kind in kinds:
        seen = reached.setdefault(kind, set())
        if dests and dests <= seen:
            log.debug("%s: [notify.%s] skips its %s message: its recipients get it already", host, name, kind)
            skip.add(kind)
        else:
            seen.update(dests)
    return skip


@dataclass
class _Cert:
    """One certificate of an MTA as the queueing step sees it."""

    slot: ManagedCert
    version: CertVersion | None
    facts: messages.CertFacts | None = None
    rf: ReminderFacts | None = None

    @property
    def vkey(self) -> str:
        return self.version.serial if self.version else "none"


def _reminder_facts(rt: Runtime, mta: MtaConfig, cert: _Cert, auto: bool,
                    deploy_failures: dict[tuple[int, int], int], now: datetime) -> ReminderFacts:
    slot, version = cert.slot, cert.version
    assert slot.id is not None
    settled = True
    if (version is not None and mta.deploy and slot.last_result == "success"
            and now - version.created_at <= SUCCESS_NOTICE_WINDOW):  # only news needs it: one query
        settled = _deployed(rt, mta, [cert]).settled
    return ReminderFacts(not_after=version.not_after if version else None, renew_at=slot.renew_at,
                         automatic=auto, last_result=slot.last_result, attempts=slot.attempts,
                         permanent=slot.last_error_permanent,
                         version_created=version.created_at if version else None,
                         deploy_failures=deploy_failures.get((slot.id, slot.current_version_id or -1), 0),
                         deploy_settled=settled)


def _message_key(certs: list[_Cert]) -> tuple[int, str]:
    """(managed_id, version_key) of a message row.

    A message about one certificate keeps the historical form (its slot, its serial);
    one about several lives on the MTA's first slot, keyed ``alg:serial+alg:serial``.
    """
    if len(certs) == 1:
        assert certs[0].slot.id is not None
        return certs[0].slot.id, certs[0].vkey
    lead = min(c.slot.id or 0 for c in certs)
    return lead, "+".join(sorted(f"{c.slot.key_alg}:{c.vkey}" for c in certs))


def _key_parts(managed_id: int, version_key: str, slots: dict[int, ManagedCert],
               by_alg: dict[tuple[str, str], ManagedCert]) -> list[tuple[int, str]]:
    """The (slot id, serial) pairs a row's key covers (see :func:`_message_key`)."""
    owner = slots.get(managed_id)
    out = []
    for part in version_key.split("+"):
        alg, sep, serial = part.partition(":")
        if not sep:
            out.append((managed_id, part))
            continue
        slot = by_alg.get((owner.hostname, alg)) if owner else None
        if slot is not None and slot.id is not None:
            out.append((slot.id, serial))
    return out


def _per_certificate(raw: dict[tuple[int, str, str], set[str]],
                     slots: list[ManagedCert]) -> dict[tuple[int, str, str], set[str]]:
    """{(slot id, serial, notifier): kinds} from the queued rows, shared messages split up."""
    by_id = {s.id: s for s in slots if s.id is not None}
    by_alg = {(s.hostname, s.key_alg): s for s in slots}
    out: dict[tuple[int, str, str], set[str]] = {}
    for (managed_id, version_key, notifier), kinds in raw.items():
        if "#" in version_key:
            continue  # a calendar message: its own key (event version and sequence), see _calendar_for
        for slot_id, serial in _key_parts(managed_id, version_key, by_id, by_alg):
            out.setdefault((slot_id, serial, notifier), set()).update(kinds)
    return out


def _algs(mta: MtaConfig) -> list[str]:
    from certmgr.pki.keytypes import KEY_TYPES

    return [KEY_TYPES[k][0] for k in mta.key_types]


def _message(rt: Runtime, mta: MtaConfig, kind: str, items: list[tuple[_Cert, Due]], now: datetime) -> Message:
    facts = [c.facts for c, _ in items if c.facts is not None]
    due = items[0][1]
    if due.threshold is not None:
        return messages.reminder_message(facts, due.threshold, now)
    if kind == "success":
        new = []
        for cert, _ in items:
            assert cert.slot.id is not None and cert.version is not None and cert.facts is not None
            older = rt.store.versions(cert.slot.id)[1:2]  # newest first: [1] is the one it replaced
            new.append(messages.NewCert(cert.facts, cert.version.source,
                                        older[0].not_after if older else None))
        return messages.success_message(new, _deployed(rt, mta, [c for c, _ in items]), now)
    errors = "; ".join(dict.fromkeys(c.slot.last_error or "unknown error" for c, _ in items))
    if kind.startswith("deploy:"):
        return messages.deploy_failure_message(facts, errors, due.level, now,
                                               _deployed(rt, mta, [c for c, _ in items]))
    return messages.failure_message(facts, errors, due.level, now, permanent=kind == "failure:permanent")


def _deployed(rt: Runtime, mta: MtaConfig, certs: list[_Cert]) -> messages.Deployed:
    """The last result per deploy target of these certificate versions (a failure wins)."""
    results: dict[str, tuple[str, str | None]] = {}
    for cert in certs:
        if cert.slot.id is None or cert.version is None:
            continue
        seen: set[str] = set()
        for d in rt.store.deployments(cert.slot.id):  # newest first
            target = d.target.split(":", 1)[0]
            if d.version_id != cert.version.id or target in seen:
                continue
            seen.add(target)
            if results.get(target, ("verified", None))[0] == "verified":
                results[target] = (d.result, d.reason)
    return messages.Deployed(mta.deploy, results)


def _queue(ctx: _Ctx, certs: list[_Cert], kind: str, notifier: str, msg: Message,
           invite: Attachment | None, *, vkey: str | None = None) -> bool:
    """Queue one message row; False when it was queued already (by another process)."""
    row = _row(ctx, certs, kind, notifier, msg, invite, vkey)
    if ctx.dry_run:
        ctx.out.append(ReminderOutcome(row.hostname, row.algs, notifier, kind, "would-queue", msg.subject))
        return True
    if not queue.queue_reminder(ctx.rt.store, row.managed_id, row.key, kind, notifier, row.payload, ctx.now):
        return False
    log.info("%s (%s): queued %s reminder for [notify.%s] (serial %s)", row.hostname, row.algs, kind,
             notifier, row.key)
    return True


def _queue_carrying(ctx: _Ctx, certs: list[_Cert], mta_certs: list[_Cert], kind: str, notifier: str,
                    msg: Message, cal: _Calendar) -> None:
    """Queue ``msg`` with the invitation, and the calendar row marked as carried by it, in one
    transaction; when another process queued either first, queue what is still missing."""
    row = _row(ctx, certs, kind, notifier, msg, cal.invite, None)
    if ctx.dry_run:
        ctx.out.append(ReminderOutcome(row.hostname, row.algs, notifier, kind, "would-queue", msg.subject))
        return
    lead, _ = _message_key(mta_certs)
    note = f"carried by the {kind} message"
    rows = [Reminder(managed_id=row.managed_id, version_key=row.key, kind=kind, notifier=notifier,
                     payload=row.payload, created_at=ctx.now),
            Reminder(managed_id=lead, version_key=cal.vkey, kind="calendar:REQUEST", notifier=notifier,
                     payload=dump_message(cal.message), created_at=ctx.now, sent_at=ctx.now, last_error=note)]
    if queue.queue_reminders_together(ctx.rt.store, rows):
        log.info("%s (%s): queued %s reminder for [notify.%s] (serial %s), with the calendar invitation",
                 row.hostname, row.algs, kind, notifier, row.key)
        return
    now_queued = queue.queued_kinds(ctx.rt.store, {row.managed_id, lead})
    if kind not in now_queued.get((row.managed_id, row.key, notifier), set()):
        _queue(ctx, certs, kind, notifier, msg, None)
    if "calendar:REQUEST" not in now_queued.get((lead, cal.vkey, notifier), set()):
        _queue(ctx, mta_certs, "calendar:REQUEST", notifier, cal.message, cal.invite, vkey=cal.vkey)


@dataclass(frozen=True)
class _Row:
    hostname: str
    algs: str
    managed_id: int
    key: str
    payload: str


def _row(ctx: _Ctx, certs: list[_Cert], kind: str, notifier: str, msg: Message, invite: Attachment | None,
         vkey: str | None) -> _Row:
    managed_id, key = _message_key(certs)
    if invite is not None:
        msg = Message(**{**msg.__dict__, "attachments": (*msg.attachments, invite)})
    return _Row(certs[0].slot.hostname, "+".join(c.slot.key_alg for c in certs), managed_id, vkey or key,
                dump_message(msg))


# ---------------------------------------------------------------------- calendar


#: what _calendar_for returns when another process is creating or advancing the event right now
_BUSY = object()


@dataclass(frozen=True)
class _Calendar:
    invite: Attachment
    pending: bool  # its message for this sequence is not queued yet
    vkey: str
    message: Message


def _calendar_for(ctx: _Ctx, nc: NotifyConfig, mta: MtaConfig, certs: list[_Cert], host_slots: list[ManagedCert],
                  events: list[CalendarEvent], raw: dict[tuple[int, str, str], set[str]]) -> _Calendar | object | None:
    """The MTA's one invitation (None without ``calendar`` or before any certificate).

    One event per MTA and notifier, on the MTA's first slot, dated by the earlier
    expiry (never in the past); created on first sight, advanced (SEQUENCE + 1,
    conditional, so one process does it) when a certificate changed.  An event
    kept on a slot whose key type left the config moves to the first slot (same
    UID); events left over from the time each certificate had its own are cancelled.
    """
    issued = [c for c in certs if c.version is not None and c.facts is not None]
    if not nc.calendar or not issued:
        return None
    rt, now = ctx.rt, ctx.now
    lead = certs[0].slot
    assert lead.id is not None
    by_id = {s.id: s for s in host_slots}
    _, ckey = _message_key(issued)
    dtstart = calendar.renewal_start(min(c.version.not_after for c in issued if c.version), now)
    mine = [e for e in events if e.notifier == nc.name and e.managed_id in by_id]
    event = next((e for e in mine if e.managed_id == lead.id), None)
    if event is None:
        moved = next((e for e in mine if e.method != "CANCEL"), None)
        if moved is not None and (ctx.dry_run or queue.move_calendar_event(rt.store, moved, lead.id)):
            event = moved
    for extra in (e for e in mine if e is not event and e.method != "CANCEL"):
        slot = by_id[extra.managed_id]
        version = rt.store.version(slot.current_version_id)
        _cancel(ctx, nc, extra, [_Cert(slot, version, facts_for(rt, slot, version, True, now))],
                f"{mta.hostname}: its certificates now share one calendar event",
                f"The certificates of {mta.hostname} now share one renewal event; this one, kept for the "
                f"{slot.key_alg} certificate alone, is cancelled.\n")
    sequence: int | None
    uid = event.uid if event is not None else calendar.event_uid(mta.hostname, lead.key_alg)
    if event is None:
        sequence = 0
        if not ctx.dry_run:
            created = queue.create_calendar_event(rt.store, lead.id, nc.name, uid, ckey, dtstart, now)
            sequence = 0 if created is not None else None  # None: another process sends it
    elif event.version_key != ckey or event.method == "CANCEL":
        sequence = event.sequence + 1
        if not ctx.dry_run:
            assert event.id is not None
            sequence = queue.advance_calendar_event(rt.store, event.id, event.version_key, event.sequence,
                                                    ckey, dtstart, "REQUEST", now)
    else:
        sequence = event.sequence
    if sequence is None:
        return _BUSY  # another process created or advanced it a moment ago, and sends it
    facts = [c.facts for c in issued if c.facts is not None]
    invite = _invite(nc, facts, uid, "REQUEST", sequence, now)
    vkey = f"{ckey}#seq{sequence}"
    what = "invitation" if sequence == 0 else f"update (sequence {sequence})"
    expiry = min(f.not_after for f in facts if f.not_after)
    late = calendar.is_late(expiry, now)
    when = "as soon as possible: it has less than a week left" if late else "one week before it expires"
    serials = ", ".join(f"{f.key_alg} serial {f.serial}" for f in facts)
    msg = Message(subject=f"[certmgr] {mta.hostname}: renewal date in your calendar "
                          f"(certificate expires {expiry:%Y-%m-%d})",
                  text=f"The attached calendar {what} marks when the TLS certificate"
                       f"{'s' if len(facts) > 1 else ''} of {mta.hostname} ({serials}) must be renewed at "
                       f"the latest: {dtstart:%Y-%m-%d %H:%M} UTC, {when}. The certificate expires "
                       f"{expiry:%Y-%m-%d %H:%M} UTC.\n",
                  severity="info", hostname=mta.hostname,
                  facts={"kind": "calendar", "sequence": sequence, "uid": uid})
    pending = "calendar:REQUEST" not in raw.get((lead.id, vkey, nc.name), set())
    return _Calendar(invite, pending, vkey, msg)


def _invite(nc: NotifyConfig, facts: list[messages.CertFacts], uid: str, method: str, sequence: int,
            now: datetime) -> Attachment:
    sender = str(nc.options.get("from", "certmgr@localhost"))
    attendees = [str(a) for a in nc.options.get("to", [])] if isinstance(nc.options.get("to"), list) else []
    ics = calendar.renewal_event_ics(facts, method=method, sequence=sequence, organizer=sender,
                                     attendees=attendees, now=now, uid=uid)
    return Attachment(f"renew-{facts[0].hostname}.ics", f"text/calendar; method={method}", ics)


def _cancel(ctx: _Ctx, nc: NotifyConfig, event: CalendarEvent, certs: list[_Cert], subject: str,
            text: str) -> None:
    """Send METHOD:CANCEL for ``event`` (once: the advance is conditional)."""
    rt = ctx.rt
    issued = [c for c in certs if c.version is not None and c.facts is not None]
    if not issued:
        return
    sequence: int | None = event.sequence + 1
    if not ctx.dry_run:
        assert event.id is not None
        sequence = queue.advance_calendar_event(rt.store, event.id, event.version_key, event.sequence,
                                                event.version_key, event.dtstart or ctx.now, "CANCEL",
                                                ctx.now)
    if sequence is None:
        return
    invite = _invite(nc, [c.facts for c in issued if c.facts is not None], event.uid, "CANCEL", sequence,
                     ctx.now)
    msg = Message(subject=f"[certmgr] {subject}", text=text, severity="info", hostname=issued[0].slot.hostname,
                  facts={"kind": "calendar-cancel", "uid": event.uid})
    _queue(ctx, issued, "calendar:CANCEL", nc.name, msg, invite, vkey=f"{event.version_key}#seq{sequence}")


def _cancel_removed(ctx: _Ctx, slots: list[ManagedCert], configured: set[str],
                    events: list[CalendarEvent]) -> None:
    """MTAs no longer in the config: cancel their calendar events (never those of an MTA
    still configured, even if one of its key types was dropped)."""
    rt = ctx.rt
    gone = {s.id: s for s in slots if s.hostname not in configured}
    for event in events:
        slot = gone.get(event.managed_id)
        if slot is None or event.method == "CANCEL":
            continue
        nc = rt.config.notifies.get(event.notifier)
        version = rt.store.version(slot.current_version_id)
        if nc is None or version is None:
            log.warning("%s (%s): no longer configured, but [notify.%s] is gone too: its calendar event "
                        "%s cannot be cancelled", slot.hostname, slot.key_alg, event.notifier, event.uid)
            continue
        cert = _Cert(slot, version, facts_for(rt, slot, version, True, ctx.now))
        _cancel(ctx, nc, event, [cert], f"{slot.hostname}: no longer managed, renewal event cancelled",
                f"{slot.hostname} was removed from {rt.config.path}; certmgr no longer renews or watches "
                "its certificate. The calendar event is cancelled.\n")


# ---------------------------------------------------------------------- sending


def send_pending(rt: Runtime, now: datetime, out: list[ReminderOutcome],
                 should_stop: Callable[[], bool] = lambda: False) -> None:
    slots = rt.store.slots()
    by_id = {s.id: s for s in slots if s.id is not None}
    by_alg = {(s.hostname, s.key_alg): s for s in slots}
    down: dict[str, str] = {}  # notifier -> error: skip its other messages this round
    for r in queue.pending_reminders(rt.store, now):
        if should_stop():
            break
        assert r.id is not None
        slot = by_id.get(r.managed_id)
        covered = [(by_id[i], serial) for i, serial in
                   _key_parts(r.managed_id, r.version_key.split("#", 1)[0], by_id, by_alg) if i in by_id]
        host = slot.hostname if slot else "?"
        alg = "+".join(s.key_alg for s, _ in covered) or "?"
        if r.notifier in down:
            out.append(ReminderOutcome(host, alg, r.notifier, r.kind, "failed", down[r.notifier]))
            continue
        if not queue.claim_reminder(rt.store, r.id, rt.node, CLAIM_SECONDS, now):
            continue  # another process is sending it
        drop = _stale(rt, r, covered)
        if drop:
            queue.mark_sent(rt.store, r.id, rt.node, now, note=f"not sent: {drop}")
            out.append(ReminderOutcome(host, alg, r.notifier, r.kind, "dropped", drop))
            continue
        try:
            rt.providers.notifier(r.notifier).send(_load(r.payload))
        except Exception as e:  # the per-message boundary: one broken notifier never stops the others
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


def _stale(rt: Runtime, r: Reminder, covered: list[tuple[ManagedCert, str]]) -> str | None:
    """Why a queued message is no longer worth sending, or None (for a message about
    several certificates: when it no longer holds for any of them)."""
    if r.notifier not in rt.config.notifies:
        return f"[notify.{r.notifier}] is no longer configured"
    if not covered or not r.kind.startswith(("threshold:", "failure:", "deploy:")):
        return None
    currents = [rt.store.version(slot.current_version_id) for slot, _ in covered]
    if all((v.serial if v else "none") != serial for v, (_, serial) in zip(currents, covered, strict=True)):
        return "the certificate was replaced since"
    if r.kind.startswith("failure:") and all(slot.last_result == "success" for slot, _ in covered):
        return "the renewal succeeded since"
    if r.kind.startswith("deploy:") and all(slot.state == "verified" for slot, _ in covered):
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
