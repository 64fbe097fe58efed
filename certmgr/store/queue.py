"""Reminder queue, calendar events and job state: the service side of the store.

Every function takes a :class:`~certmgr.store.Store` and runs one short
transaction.  Exactly-once delivery rests on two things done here:

* a reminder is a row unique per (certificate, version, kind, notifier): the
  insert of a second one fails, so a reminder is queued once however many
  processes or nodes decide it is due;
* before sending, a process claims the row with a conditional UPDATE (like
  :meth:`Store.claim`), so two senders never send the same row, and a dead
  sender's claim expires.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, true, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from certmgr.store.db import session_scope
from certmgr.store.models import CalendarEvent, JobState, Reminder

if TYPE_CHECKING:
    from certmgr.store import Store

#: SQLite's older builds allow 999 bound parameters per statement
_MAX_IN = 500


def _among(column: Any, ids: set[int]) -> Any:
    """``column IN ids`` for a few ids; for many (the daemon asks about every certificate) no
    condition -- the caller filters -- so that the question stays one statement."""
    return col(column).in_(sorted(ids)) if len(ids) <= _MAX_IN else true()


# ---------------------------------------------------------------------- reminders


def queued_kinds(store: Store, managed_ids: Iterable[int]) -> dict[tuple[int, str, str], set[str]]:
    """{(managed_id, version_key, notifier): {kind, ...}} of every reminder ever queued."""
    ids = set(managed_ids)
    out: dict[tuple[int, str, str], set[str]] = {}
    q = select(Reminder.managed_id, Reminder.version_key, Reminder.notifier, Reminder.kind).where(
        _among(Reminder.managed_id, ids))
    with session_scope(store.engine) as s:
        for managed_id, version_key, notifier, kind in s.exec(q):
            if managed_id in ids:
                out.setdefault((managed_id, version_key, notifier), set()).add(kind)
    return out


def probe_notices(store: Store, managed_ids: Iterable[int]) -> dict[tuple[int, str], dict[str, dict[str, datetime]]]:
    """{(managed_id, notifier): {episode key: {kind: queued at}}} of every probe notice ever queued."""
    ids = set(managed_ids)
    out: dict[tuple[int, str], dict[str, dict[str, datetime]]] = {}
    q = select(Reminder).where(_among(Reminder.managed_id, ids), col(Reminder.kind).startswith("probe:"))
    with session_scope(store.engine) as s:
        for r in s.exec(q):
            if r.managed_id not in ids:
                continue
            at = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)  # SQLite: naive
            out.setdefault((r.managed_id, r.notifier), {}).setdefault(r.version_key, {})[r.kind] = at
    return out


def queue_reminder(store: Store, managed_id: int, version_key: str, kind: str, notifier: str,
                   payload: str, now: datetime) -> bool:
    """Insert the reminder; False when it was queued already (by us, earlier, or another node)."""
    try:
        with session_scope(store.engine) as s:
            s.add(Reminder(managed_id=managed_id, version_key=version_key, kind=kind, notifier=notifier,
                           payload=payload, created_at=now))
    except IntegrityError:
        return False
    return True


def queue_reminders_together(store: Store, rows: list[Reminder]) -> bool:
    """Insert all of ``rows`` in one transaction, or none (False) when one was queued already:
    a message and the row saying it carries another's content are never split."""
    try:
        with session_scope(store.engine) as s:
            for row in rows:
                s.add(row)
    except IntegrityError:
        return False
    return True


def pending_reminders(store: Store, now: datetime, limit: int = 1000) -> list[Reminder]:
    """Unsent reminders nobody holds a live claim on, oldest first."""
    with session_scope(store.engine) as s:
        q = (
            select(Reminder)
            .where(col(Reminder.sent_at).is_(None),
                   or_(col(Reminder.claimed_until).is_(None), col(Reminder.claimed_until) < now))
            .order_by(col(Reminder.id))
            .limit(limit)
        )
        return list(s.exec(q))


def unsent_reminders(store: Store) -> list[Reminder]:
    with session_scope(store.engine) as s:
        q = select(Reminder).where(col(Reminder.sent_at).is_(None)).order_by(col(Reminder.id))
        return list(s.exec(q))


def all_reminders(store: Store) -> list[Reminder]:
    with session_scope(store.engine) as s:
        return list(s.exec(select(Reminder).order_by(col(Reminder.id))))


def claim_reminder(store: Store, reminder_id: int, owner: str, seconds: float, now: datetime) -> bool:
    """Take an unsent reminder for ``seconds`` unless someone else holds a live claim."""
    with session_scope(store.engine) as s:
        result = s.exec(
            update(Reminder)
            .where(
                col(Reminder.id) == reminder_id,
                col(Reminder.sent_at).is_(None),
                or_(col(Reminder.claimed_until).is_(None), col(Reminder.claimed_until) < now,
                    col(Reminder.claimed_by) == owner),
            )
            .values(claimed_by=owner, claimed_until=now + timedelta(seconds=seconds))
        )
        return bool(result.rowcount == 1)


def mark_sent(store: Store, reminder_id: int, owner: str, now: datetime, note: str | None = None) -> None:
    """Record delivery (``note`` says why a reminder was dropped instead of sent)."""
    with session_scope(store.engine) as s:
        s.exec(
            update(Reminder)
            .where(col(Reminder.id) == reminder_id, col(Reminder.claimed_by) == owner)
            .values(sent_at=now, claimed_until=None, last_error=note)
        )


def mark_failed(store: Store, reminder_id: int, owner: str, error: str) -> None:
    """Keep it queued: one more attempt, the error kept, the claim released."""
    with session_scope(store.engine) as s:
        s.exec(
            update(Reminder)
            .where(col(Reminder.id) == reminder_id, col(Reminder.claimed_by) == owner)
            .values(attempts=Reminder.attempts + 1, last_error=error, claimed_by=None, claimed_until=None)
        )


# ---------------------------------------------------------------------- calendar events


def calendar_events(store: Store) -> list[CalendarEvent]:
    with session_scope(store.engine) as s:
        return list(s.exec(select(CalendarEvent).order_by(col(CalendarEvent.id))))


def create_calendar_event(store: Store, managed_id: int, notifier: str, uid: str, version_key: str,
                          dtstart: datetime, now: datetime) -> CalendarEvent | None:
    """The event at SEQUENCE 0; None when another process created it first."""
    try:
        with session_scope(store.engine) as s:
            row = CalendarEvent(managed_id=managed_id, notifier=notifier, uid=uid, sequence=0,
                                method="REQUEST", version_key=version_key, dtstart=dtstart, updated_at=now)
            s.add(row)
            s.flush()
            s.refresh(row)
            return row
    except IntegrityError:
        return None


def move_calendar_event(store: Store, event: CalendarEvent, managed_id: int) -> bool:
    """Re-home an event (same UID) on another slot of its MTA; False when another
    process moved it first or that slot has an event already."""
    try:
        with session_scope(store.engine) as s:
            result = s.exec(
                update(CalendarEvent)
                .where(col(CalendarEvent.id) == event.id, col(CalendarEvent.managed_id) == event.managed_id)
                .values(managed_id=managed_id)
            )
            moved = result.rowcount == 1
    except IntegrityError:
        return False
    if moved:
        event.managed_id = managed_id
    return bool(moved)


def advance_calendar_event(store: Store, event_id: int, seen_version_key: str, seen_sequence: int,
                           version_key: str, dtstart: datetime, method: str, now: datetime) -> int | None:
    """Move the event to a new certificate version (or cancel it): SEQUENCE + 1.

    Conditional on the version and sequence the caller saw, so of two processes
    only one advances it (and sends the update); returns the new sequence or None.
    """
    with session_scope(store.engine) as s:
        result = s.exec(
            update(CalendarEvent)
            .where(and_(col(CalendarEvent.id) == event_id, col(CalendarEvent.version_key) == seen_version_key,
                        col(CalendarEvent.sequence) == seen_sequence))
            .values(sequence=seen_sequence + 1, version_key=version_key, dtstart=dtstart, method=method,
                    updated_at=now)
        )
        return seen_sequence + 1 if result.rowcount == 1 else None


# ---------------------------------------------------------------------- job state


def job_states(store: Store) -> dict[str, JobState]:
    with session_scope(store.engine) as s:
        return {row.name: row for row in s.exec(select(JobState))}


def start_job(store: Store, name: str, node: str, now: datetime, max_seconds: float) -> bool:
    """Record the start of a run and take the job for ``max_seconds``.

    False when another node runs it right now (several daemons sharing one
    database do each job once).  A crashed run's claim expires after ``max_seconds``.
    """
    until = now + timedelta(seconds=max_seconds)
    with session_scope(store.engine) as s:
        result = s.exec(
            update(JobState)
            .where(col(JobState.name) == name,
                   or_(col(JobState.running_until).is_(None), col(JobState.running_until) < now,
                       col(JobState.node) == node))
            .values(last_run=now, node=node, running_until=until)
        )
        if result.rowcount == 1:
            return True
        if s.get(JobState, name) is not None:
            return False  # held by another node
    try:
        with session_scope(store.engine) as s:
            s.add(JobState(name=name, last_run=now, node=node, running_until=until))
    except IntegrityError:
        return False  # another node created it a moment ago and runs it
    return True


def finish_job(store: Store, name: str, node: str, now: datetime, *, error: str | None,
               next_run: datetime | None) -> None:
    """Record the end of a run: last_success on success, last_error either way."""
    values: dict[str, object] = {"running_until": None, "last_error": error, "next_run": next_run}
    if error is None:
        values["last_success"] = now
    with session_scope(store.engine) as s:
        s.exec(
            update(JobState).where(col(JobState.name) == name, col(JobState.node) == node).values(**values)
        )


def set_next_run(store: Store, name: str, next_run: datetime | None) -> None:
    with session_scope(store.engine) as s:
        row = s.get(JobState, name)
        if row is not None:
            row.next_run = next_run
            s.add(row)
