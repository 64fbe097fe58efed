"""The partner watch's table: a check never clears an open alert; both survive a new process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from certmgr.store import Store
from certmgr.store.partners import AddressState, PartnerRecord, PartnerStore


def _record(now: datetime, meets: bool) -> PartnerRecord:
    expiry = now + timedelta(days=30)
    return PartnerRecord("bank.example", "verify", "ok" if meets else "critical", meets, True,
                         () if meets else ("mx2.bank.example (192.0.2.7) does not offer STARTTLS",),
                         (AddressState("mx2.bank.example", "192.0.2.7", meets, expiry),), now)


def test_checks_keep_the_open_alert_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'certmgr.db'}"
    now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    store = Store(url)
    try:
        partners = PartnerStore(store)
        partners.save([_record(now, False)])
        partners.set_alerted("bank.example", now)
        partners.save([_record(now + timedelta(days=1), False)])  # the next check
    finally:
        store.close()
    store = Store(url)  # a restarted daemon
    try:
        [(domain, rec)] = PartnerStore(store).states().items()
    finally:
        store.close()
    assert domain == "bank.example" and rec.alerted_at == now
    assert rec.checked_at == now + timedelta(days=1) and not rec.meets
    assert rec.problems == ("mx2.bank.example (192.0.2.7) does not offer STARTTLS",)
    assert rec.addresses == (AddressState("mx2.bank.example", "192.0.2.7", False, now + timedelta(days=31)),)
