"""The reminder queue and calendar events in a real SQLite store: once, and only once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from certmgr.store import Store, queue
from certmgr.store.models import Reminder

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def store_with_slot(tmp_path: Path) -> tuple[Store, int]:
    store = Store(f"sqlite:///{tmp_path / 'certmgr.db'}")
    slot = store.sync_slot("mx1.example.com", "rsa", "rsa-2048", ["mx1.example.com"], "corp")
    assert slot.id is not None
    return store, slot.id


def test_queued_once_claimed_once_and_kept_on_failure(tmp_path: Path) -> None:
    store, sid = store_with_slot(tmp_path)
    assert queue.queue_reminder(store, sid, "01ab", "threshold:30", "ops", "{}", NOW)
    assert not queue.queue_reminder(store, sid, "01ab", "threshold:30", "ops", "{}", NOW)  # a second node
    assert queue.queue_reminder(store, sid, "01ab", "threshold:30", "pager", "{}", NOW)  # another notifier
    assert queue.queue_reminder(store, sid, "02cd", "threshold:30", "ops", "{}", NOW)  # another version
    assert queue.queued_kinds(store, [sid])[(sid, "01ab", "ops")] == {"threshold:30"}

    first = queue.pending_reminders(store, NOW)[0]
    assert first.id is not None
    assert queue.claim_reminder(store, first.id, "node-a", 300, NOW)
    assert not queue.claim_reminder(store, first.id, "node-b", 300, NOW)
    assert first.id not in {r.id for r in queue.pending_reminders(store, NOW)}

    queue.mark_failed(store, first.id, "node-a", "relay down")
    again = next(r for r in queue.pending_reminders(store, NOW) if r.id == first.id)
    assert again.attempts == 1 and again.last_error == "relay down" and again.sent_at is None

    # a claim of a sender that died expires
    assert queue.claim_reminder(store, first.id, "node-a", 300, NOW)
    assert queue.claim_reminder(store, first.id, "node-b", 300, NOW + timedelta(seconds=301))
    queue.mark_sent(store, first.id, "node-b", NOW)
    assert not queue.claim_reminder(store, first.id, "node-a", 300, NOW + timedelta(days=1))
    assert len(queue.unsent_reminders(store)) == 2
    store.close()


def test_calendar_event_advances_once(tmp_path: Path) -> None:
    store, sid = store_with_slot(tmp_path)
    ev = queue.create_calendar_event(store, sid, "ops", "uid@certmgr", "01ab", NOW, NOW)
    assert ev is not None and ev.id is not None and ev.sequence == 0
    assert queue.create_calendar_event(store, sid, "ops", "uid@certmgr", "01ab", NOW, NOW) is None
    start = NOW + timedelta(days=60)
    assert queue.advance_calendar_event(store, ev.id, "01ab", 0, "02cd", start, "REQUEST", NOW) == 1
    # a second process that saw the same old state does not advance it again
    assert queue.advance_calendar_event(store, ev.id, "01ab", 0, "02cd", start, "REQUEST", NOW) is None
    (row,) = queue.calendar_events(store)
    assert (row.sequence, row.version_key, row.uid) == (1, "02cd", "uid@certmgr")
    store.close()


def test_job_state_claims(tmp_path: Path) -> None:
    store, _ = store_with_slot(tmp_path)
    assert queue.start_job(store, "renew", "a", NOW, 3600)
    assert not queue.start_job(store, "renew", "b", NOW, 3600)
    assert queue.start_job(store, "renew", "a", NOW, 3600)  # the same node after a restart
    queue.finish_job(store, "renew", "a", NOW, error=None, next_run=NOW + timedelta(minutes=10))
    assert queue.start_job(store, "renew", "b", NOW, 3600)
    queue.finish_job(store, "renew", "b", NOW, error="boom", next_run=None)
    job = queue.job_states(store)["renew"]
    assert job.last_success is not None and job.last_error == "boom" and job.running_until is None
    assert queue.start_job(store, "probe", "a", NOW, 3600)  # first run ever: the row is created
    assert queue.job_states(store)["probe"].node == "a"
    store.close()


def test_rows_of_one_and_of_both_certificates_count_for_each(tmp_path: Path) -> None:
    """Rows about one certificate keep the old key (slot, serial); a row about both of an MTA's
    certificates lives on its first slot keyed alg:serial+alg:serial. Each certificate sees
    the kinds of every row that covers it, so nothing is queued twice, old rows included."""
    from certmgr.notify.reminders import _per_certificate

    store, rsa = store_with_slot(tmp_path)
    ecdsa_slot = store.sync_slot("mx1.example.com", "ecdsa", "ecdsa-p256", ["mx1.example.com"], "corp")
    ecdsa = ecdsa_slot.id
    assert ecdsa is not None
    assert queue.queue_reminder(store, rsa, "01ab", "threshold:30", "ops", "{}", NOW)  # as before
    notice = Reminder(managed_id=rsa, version_key="ecdsa:02cd+rsa:01ab", kind="success", notifier="ops",
                      created_at=NOW)
    carried = Reminder(managed_id=rsa, version_key="ecdsa:02cd+rsa:01ab#seq1", kind="calendar:REQUEST",
                       notifier="ops", created_at=NOW, sent_at=NOW, last_error="carried by the success message")
    assert queue.queue_reminders_together(store, [notice, carried])
    again = [Reminder(**{**r.model_dump(), "id": None}) for r in (notice, carried)]
    assert not queue.queue_reminders_together(store, again), "all or nothing, once"
    slots, _ = store.decision_rows()
    per = _per_certificate(queue.queued_kinds(store, [rsa, ecdsa]), slots)
    assert per[(rsa, "01ab", "ops")] == {"threshold:30", "success"}
    assert per[(ecdsa, "02cd", "ops")] == {"success"}
    assert [r.kind for r in queue.pending_reminders(store, NOW)] == ["threshold:30", "success"], \
        "a carried invitation is not sent again"
