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
2. *send*: claim each pending row, send it, mark it sent (:mod:`certmgr.notify.outbox`).

Calendar invitations (``calendar = true``) are :mod:`certmgr.notify.invitations`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime

from certmgr.config.model import MtaConfig
from certmgr.errors import CertmgrError
from certmgr.interfaces import HasDestinations, Message, renews_automatically
from certmgr.notify.cert_status import Deployed, NewCert
from certmgr.notify.invitations import BUSY, Invitation, cancel_removed, invitation_for
from certmgr.notify.outbox import (
    Cert,
    Ctx,
    ReminderOutcome,
    dump_message,
    facts_for,
    key_parts,
    make_row,
    message_key,
    queue_row,
    send_pending,
)
from certmgr.notify.policy import SUCCESS_NOTICE_WINDOW, Due, ReminderFacts, due_reminders
from certmgr.notify.renewal_messages import deploy_failure_message, failure_message, reminder_message
from certmgr.notify.success_message import success_message
from certmgr.runtime import Runtime
from certmgr.store import queue, utcnow
from certmgr.store.decisions import Decisions, SlotState
from certmgr.store.models import Reminder

log = logging.getLogger("certmgr.reminders")


def process(rt: Runtime, now: datetime | None = None, *, dry_run: bool = False,
            should_stop: Callable[[], bool] = lambda: False,
            inventory: Decisions | None = None) -> list[ReminderOutcome]:
    """Queue every reminder and calendar message due now, then send what is pending.

    With ``dry_run`` nothing is queued or sent: the result lists what would be
    queued and what waits in the queue.  Failed sends stay queued (action "failed").
    ``inventory``: every stored slot and each one's current certificate, read just before by a
    renewal that changed none of them (else they are read here).
    """
    ctx = Ctx(rt, now or utcnow(), dry_run, [])
    _queue_due(ctx, inventory)
    if dry_run:
        slots, _ = rt.store.decision_rows()
        by_id = {s.id: s for s in slots if s.id is not None}
        by_alg = {s.slot_key: s for s in slots}
        for r in queue.unsent_reminders(rt.store):
            slot = by_id.get(r.managed_id)
            algs = "+".join(by_id[i].key_alg for i, _ in
                            key_parts(r.managed_id, r.version_key.split("#", 1)[0], by_id, by_alg))
            ctx.out.append(ReminderOutcome(slot.hostname if slot else "?", algs or "?",
                                           r.notifier, r.kind, "pending", r.last_error or "queued"))
    else:
        send_pending(rt, ctx.now, ctx.out, should_stop)
    return ctx.out


# ---------------------------------------------------------------------- queueing


def _queue_due(ctx: Ctx, inventory: Decisions | None) -> None:
    """One message per (MTA, event, notifier): the certificates of an MTA that owe the same
    kind of message (both algorithms crossing a threshold, both renewed) go in one."""
    rt = ctx.rt
    config = rt.mta_of
    # every slot and its current certificate as plain rows, in one query (or as the renewal
    # that ran just before read them)
    slots, versions = inventory or rt.store.decision_rows()
    managed = [(config[s.slot_key], s) for s in slots if s.slot_key in config]
    raw = queue.queued_kinds(rt.store, (s.id for s in slots if s.id is not None))
    already = _per_certificate(raw, slots)
    deploy_failures = rt.store.failed_deployments([s.id for _, s in managed if s.id is not None])
    events = queue.calendar_events(rt.store)
    host_slots: dict[str, list[SlotState]] = {}
    for s in slots:
        host_slots.setdefault(s.hostname, []).append(s)
    by_mta: dict[str, tuple[MtaConfig, list[SlotState]]] = {}
    for mta, slot in managed:
        by_mta.setdefault(mta.hostname, (mta, []))[1].append(slot)
    automatic: dict[str, bool] = {}
    destinations: dict[str, frozenset[str]] = {}  # per notifier, asked once per run
    for mta, group in by_mta.values():
        group.sort(key=lambda s: s.id or 0)  # the first slot of an MTA (lowest id) holds its shared rows
        if mta.issuer not in automatic:
            automatic[mta.issuer] = renews_automatically(rt.providers.issuer(mta.issuer))
        auto = automatic[mta.issuer]
        certs = [Cert(s, versions.get(s.id) if s.id is not None else None) for s in group]
        for cert in certs:
            cert.rf = _reminder_facts(rt, mta, cert, auto, deploy_failures, ctx.now)
        reached: dict[str, set[str]] = {}  # kind -> destinations an earlier notifier of this MTA covers
        for name in mta.notify:
            nc = rt.config.notifies[name]
            if name not in destinations:
                destinations[name] = _destinations(rt, name)
            dests = destinations[name]
            dues: dict[str, list[tuple[Cert, Due]]] = {}
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
            if (dues or nc.calendar) and certs[0].facts is None:  # what the messages say: only news needs it
                for cert in certs:
                    cert.facts = facts_for(rt, cert.slot, cert.version, auto, ctx.now)
            cal = invitation_for(ctx, nc, mta, certs, host_slots[mta.hostname], events, raw)
            if cal is BUSY:
                # another process is moving the event right now: it sends the notice with the
                # invitation; this one would only race it into two mails
                dues.pop("success", None)
                cal = None
            assert cal is None or isinstance(cal, Invitation)
            # the invitation goes out once: with the success notice when there is one, else on its own
            carrier = "success" if cal is not None and cal.pending and "success" in dues else None
            for kind, items in dues.items():
                msg = _message(rt, mta, kind, items, ctx.now)
                if kind == carrier and cal is not None:
                    _queue_carrying(ctx, [c for c, _ in items], certs, kind, name, msg, cal)
                else:
                    queue_row(ctx, [c for c, _ in items], kind, name, msg, None)
            if cal is not None and cal.pending and carrier is None:
                queue_row(ctx, certs, "calendar:REQUEST", name, cal.message, cal.invite, vkey=cal.vkey)
    cancel_removed(ctx, slots, {m.hostname for m in rt.config.mtas}, events)


def _destinations(rt: Runtime, name: str) -> frozenset[str]:
    """Where [notify.NAME] delivers (empty when its provider does not say)."""
    try:
        notifier = rt.providers.notifier(name)
    except CertmgrError:
        return frozenset()  # it cannot be built: sending says why, and keeps the message queued
    return frozenset(notifier.destinations) if isinstance(notifier, HasDestinations) else frozenset()


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


def _reminder_facts(rt: Runtime, mta: MtaConfig, cert: Cert, auto: bool,
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


def _per_certificate(raw: dict[tuple[int, str, str], set[str]],
                     slots: list[SlotState]) -> dict[tuple[int, str, str], set[str]]:
    """{(slot id, serial, notifier): kinds} from the queued rows, shared messages split up."""
    by_id = {s.id: s for s in slots if s.id is not None}
    by_alg = {s.slot_key: s for s in slots}
    out: dict[tuple[int, str, str], set[str]] = {}
    for (managed_id, version_key, notifier), kinds in raw.items():
        if "#" in version_key:
            continue  # a calendar message: its own key (event version and sequence), see invitation_for
        for slot_id, serial in key_parts(managed_id, version_key, by_id, by_alg):
            out.setdefault((slot_id, serial, notifier), set()).update(kinds)
    return out


def _message(rt: Runtime, mta: MtaConfig, kind: str, items: list[tuple[Cert, Due]], now: datetime) -> Message:
    facts = [c.facts for c, _ in items if c.facts is not None]
    due = items[0][1]
    if due.threshold is not None:
        return reminder_message(facts, due.threshold, now)
    if kind == "success":
        new = []
        for cert, _ in items:
            assert cert.slot.id is not None and cert.version is not None and cert.facts is not None
            older = rt.store.versions(cert.slot.id)[1:2]  # newest first: [1] is the one it replaced
            new.append(NewCert(cert.facts, cert.version.source,
                                        older[0].not_after if older else None))
        return success_message(new, _deployed(rt, mta, [c for c, _ in items]), now)
    errors = "; ".join(dict.fromkeys(c.slot.last_error or "unknown error" for c, _ in items))
    if kind.startswith("deploy:"):
        return deploy_failure_message(facts, errors, due.level, now,
                                               _deployed(rt, mta, [c for c, _ in items]))
    return failure_message(facts, errors, due.level, now, permanent=kind == "failure:permanent")


def _deployed(rt: Runtime, mta: MtaConfig, certs: list[Cert]) -> Deployed:
    """The last result per deploy target of these certificate versions (a failure wins)."""
    results: dict[str, tuple[str, str | None]] = {}
    for cert in certs:
        if cert.slot.id is None or cert.version is None:
            continue
        seen: set[str] = set()
        for d in rt.store.deployments(cert.slot.id):  # newest first
            target = d.target.split(":", 1)[0]
            if d.version_id != cert.version.id or target in seen or d.result == "waiting":
                continue  # waiting on DNS (DANE rollover): not settled yet, not a failure
            seen.add(target)
            if results.get(target, ("verified", None))[0] == "verified":
                results[target] = (d.result, d.reason)
    return Deployed(mta.deploy, results)


def _queue_carrying(ctx: Ctx, certs: list[Cert], mta_certs: list[Cert], kind: str, notifier: str,
                    msg: Message, cal: Invitation) -> None:
    """Queue ``msg`` with the invitation, and the calendar row marked as carried by it, in one
    transaction; when another process queued either first, queue what is still missing."""
    row = make_row(ctx, certs, kind, notifier, msg, cal.invite, None)
    if ctx.dry_run:
        ctx.out.append(ReminderOutcome(row.hostname, row.algs, notifier, kind, "would-queue", msg.subject))
        return
    lead, _ = message_key(mta_certs)
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
        queue_row(ctx, certs, kind, notifier, msg, None)
    if "calendar:REQUEST" not in now_queued.get((lead, cal.vkey, notifier), set()):
        queue_row(ctx, mta_certs, "calendar:REQUEST", notifier, cal.message, cal.invite, vkey=cal.vkey)
