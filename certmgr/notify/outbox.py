"""The reminder queue's rows: what a run is, how a message is keyed and stored in its row,
and sending what is pending.

A row is keyed (slot, serial) for one certificate and (the MTA's first slot,
``alg:serial+alg:serial``) for several (:func:`message_key`, :func:`key_parts`).
*send*: claim each pending row (conditional UPDATE), send it, mark it sent.
A failed send keeps it queued with the error; it goes out when the relay is back.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certmgr.errors import NotifyError
from certmgr.interfaces import Attachment, Message
from certmgr.notify.cert_status import CertStatus
from certmgr.notify.policy import ReminderFacts
from certmgr.pki.keytypes import SlotKey
from certmgr.runtime import Runtime
from certmgr.store import CertVersion, ManagedCert, queue, utcnow
from certmgr.store.decisions import CurrentCert, SlotState
from certmgr.store.models import Reminder
from certmgr.times import days_left

log = logging.getLogger("certmgr.reminders")

CLAIM_SECONDS = 300.0


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
class Ctx:
    """One queueing run: the runtime, its ``now``, whether it only says what it would do, the outcomes so far."""

    rt: Runtime
    now: datetime
    dry_run: bool
    out: list[ReminderOutcome]


@dataclass
class Cert:
    """One certificate of an MTA as the queueing step sees it."""

    slot: SlotState
    version: CurrentCert | None
    facts: CertStatus | None = None
    rf: ReminderFacts | None = None

    @property
    def vkey(self) -> str:
        return self.version.serial if self.version else "none"


def facts_for(rt: Runtime, slot: SlotState | ManagedCert, version: CurrentCert | CertVersion | None,
              automatic: bool, now: datetime) -> CertStatus:
    """What messages and calendars say of one certificate (from the plain rows the reminder pass
    reads, or from model objects)."""
    return CertStatus(
        hostname=slot.hostname,
        names=version.all_names if version else slot.all_names,
        key_type=slot.key_type,
        issuer=slot.issuer,
        serial=version.serial if version else None,
        not_after=version.not_after if version else None,
        days_left=days_left(version.not_after, now) if version else None,
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


def message_key(certs: list[Cert]) -> tuple[int, str]:
    """(managed_id, version_key) of a message row.

    A message about one certificate keeps the historical form (its slot, its serial);
    one about several lives on the MTA's first slot, keyed ``alg:serial+alg:serial``.
    """
    if len(certs) == 1:
        assert certs[0].slot.id is not None
        return certs[0].slot.id, certs[0].vkey
    lead = min(c.slot.id or 0 for c in certs)
    return lead, "+".join(sorted(f"{c.slot.key_alg}:{c.vkey}" for c in certs))


def key_parts(managed_id: int, version_key: str, slots: dict[int, SlotState],
               by_alg: dict[SlotKey, SlotState]) -> list[tuple[int, str]]:
    """The (slot id, serial) pairs a row's key covers (see :func:`message_key`)."""
    owner = slots.get(managed_id)
    out = []
    for part in version_key.split("+"):
        alg, sep, serial = part.partition(":")
        if not sep:
            out.append((managed_id, part))
            continue
        slot = by_alg.get(SlotKey(owner.hostname, alg)) if owner else None
        if slot is not None and slot.id is not None:
            out.append((slot.id, serial))
    return out


def queue_row(ctx: Ctx, certs: list[Cert], kind: str, notifier: str, msg: Message,
           invite: Attachment | None, *, vkey: str | None = None) -> bool:
    """Queue one message row; False when it was queued already (by another process)."""
    row = make_row(ctx, certs, kind, notifier, msg, invite, vkey)
    if ctx.dry_run:
        ctx.out.append(ReminderOutcome(row.hostname, row.algs, notifier, kind, "would-queue", msg.subject))
        return True
    if not queue.queue_reminder(ctx.rt.store, row.managed_id, row.key, kind, notifier, row.payload, ctx.now):
        return False
    log.info("%s (%s): queued %s reminder for [notify.%s] (serial %s)", row.hostname, row.algs, kind,
             notifier, row.key)
    return True


@dataclass(frozen=True)
class Row:
    hostname: str
    algs: str
    managed_id: int
    key: str
    payload: str


def make_row(ctx: Ctx, certs: list[Cert], kind: str, notifier: str, msg: Message, invite: Attachment | None,
         vkey: str | None) -> Row:
    managed_id, key = message_key(certs)
    if invite is not None:
        msg = Message(**{**msg.__dict__, "attachments": (*msg.attachments, invite)})
    return Row(certs[0].slot.hostname, "+".join(c.slot.key_alg for c in certs), managed_id, vkey or key,
                dump_message(msg))


# ---------------------------------------------------------------------- sending


def send_pending(rt: Runtime, now: datetime, out: list[ReminderOutcome],
                 should_stop: Callable[[], bool] = lambda: False) -> None:
    pending = queue.pending_reminders(rt.store, now)
    if not pending:
        return  # the slots are read only for messages to send (10,000 rows at scale)
    slots, _ = rt.store.decision_rows()
    by_id = {s.id: s for s in slots if s.id is not None}
    by_alg = {s.slot_key: s for s in slots}
    down: dict[str, str] = {}  # notifier -> error: skip its other messages this round
    for r in pending:
        if should_stop():
            break
        assert r.id is not None
        slot = by_id.get(r.managed_id)
        covered = [(by_id[i], serial) for i, serial in
                   key_parts(r.managed_id, r.version_key.split("#", 1)[0], by_id, by_alg) if i in by_id]
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
            rt.providers.notifier(r.notifier).send(load_message(r.payload))
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


def _stale(rt: Runtime, r: Reminder, covered: list[tuple[SlotState, str]]) -> str | None:
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
                         "data": base64.b64encode(a.data).decode(), "content_id": a.content_id}
                        for a in msg.attachments],
    }
    return json.dumps(data, default=str)


def load_message(payload: str) -> Message:
    d = json.loads(payload)
    atts = tuple(Attachment(a["filename"], a["content_type"], base64.b64decode(a["data"]), a.get("content_id"))
                 for a in d.get("attachments", []))
    return Message(subject=d["subject"], text=d["text"], html=d.get("html"),
                   severity=d.get("severity", "info"), hostname=d.get("hostname"), attachments=atts,
                   facts=d.get("facts", {}))
