"""Calendar invitations for reminders (``calendar = true``): their rows in the reminder queue.

One event per MTA and notifier, its UID kept in the store, dated by the earlier
expiry and never in the past; a new certificate sends an update (SEQUENCE + 1,
new DTSTART), carried by the success notice when there is one (both rows
inserted together) and else by its own mail; an MTA no longer in the config
gets a CANCEL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from certmgr.config.model import MtaConfig, NotifyConfig
from certmgr.interfaces import Attachment, Message
from certmgr.notify import calendar
from certmgr.notify.cert_status import CertStatus
from certmgr.notify.outbox import Cert, Ctx, facts_for, message_key, queue_row
from certmgr.store import queue
from certmgr.store.decisions import CurrentCert, SlotState
from certmgr.store.models import CalendarEvent

log = logging.getLogger("certmgr.reminders")


#: what invitation_for returns when another process is creating or advancing the event right now
BUSY = object()


@dataclass(frozen=True)
class Invitation:
    invite: Attachment
    pending: bool  # its message for this sequence is not queued yet
    vkey: str
    message: Message


def invitation_for(ctx: Ctx, nc: NotifyConfig, mta: MtaConfig, certs: list[Cert], host_slots: list[SlotState],
                  events: list[CalendarEvent], raw: dict[tuple[int, str, str], set[str]]) -> Invitation | object | None:
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
    _, ckey = message_key(issued)
    dtstart = calendar.renewal_start(min(c.version.not_after for c in issued if c.version), now)
    mine = [e for e in events if e.notifier == nc.name and e.managed_id in by_id]
    event = next((e for e in mine if e.managed_id == lead.id), None)
    if event is None:
        moved = next((e for e in mine if e.method != "CANCEL"), None)
        if moved is not None and (ctx.dry_run or queue.move_calendar_event(rt.store, moved, lead.id)):
            event = moved
    for extra in (e for e in mine if e is not event and e.method != "CANCEL"):
        slot = by_id[extra.managed_id]
        version = _current(ctx, slot)
        _cancel(ctx, nc, extra, [Cert(slot, version, facts_for(rt, slot, version, True, now))],
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
        return BUSY  # another process created or advanced it a moment ago, and sends it
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
    return Invitation(invite, pending, vkey, msg)


def _invite(nc: NotifyConfig, facts: list[CertStatus], uid: str, method: str, sequence: int,
            now: datetime) -> Attachment:
    sender = str(nc.options.get("from", "certmgr@localhost"))
    attendees = [str(a) for a in nc.options.get("to", [])] if isinstance(nc.options.get("to"), list) else []
    ics = calendar.renewal_event_ics(facts, method=method, sequence=sequence, organizer=sender,
                                     attendees=attendees, now=now, uid=uid)
    return Attachment(f"renew-{facts[0].hostname}.ics", f"text/calendar; method={method}", ics)


def _cancel(ctx: Ctx, nc: NotifyConfig, event: CalendarEvent, certs: list[Cert], subject: str,
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
    queue_row(ctx, issued, "calendar:CANCEL", nc.name, msg, invite, vkey=f"{event.version_key}#seq{sequence}")


def cancel_removed(ctx: Ctx, slots: list[SlotState], configured: set[str],
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
        version = _current(ctx, slot)
        if nc is None or version is None:
            log.warning("%s (%s): no longer configured, but [notify.%s] is gone too: its calendar event "
                        "%s cannot be cancelled", slot.hostname, slot.key_alg, event.notifier, event.uid)
            continue
        cert = Cert(slot, version, facts_for(rt, slot, version, True, ctx.now))
        _cancel(ctx, nc, event, [cert], f"{slot.hostname}: no longer managed, renewal event cancelled",
                f"{slot.hostname} was removed from {rt.config.path}; certmgr no longer renews or watches "
                "its certificate. The calendar event is cancelled.\n")


def _current(ctx: Ctx, slot: SlotState) -> CurrentCert | None:
    """The current certificate of a slot whose event is cancelled (rare: read on its own)."""
    version = ctx.rt.store.version(slot.current_version_id)
    return CurrentCert.of(version) if version is not None else None
