"""Leases: work on a certificate slot is claimed with a single conditional UPDATE (atomic on
SQLite and PostgreSQL alike), so two processes or nodes never renew the same certificate at
once, and a dead node's claim expires."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col

from certmgr.store.base import StoreBase, take_lease, utcnow
from certmgr.store.db import session_scope, write_scope
from certmgr.store.models import ManagedCert


class LeaseStore(StoreBase):
    def claim(self, slot_id: int, owner: str, seconds: float, now: datetime | None = None) -> bool:
        """Take the slot for ``seconds`` unless somebody else holds a live lease."""
        now = now or utcnow()
        with write_scope(self.engine) as c:
            return take_lease(c, slot_id, owner, seconds, now)

    def lease_owner(self, slot_id: int) -> str | None:
        with session_scope(self.engine) as s:
            row = s.get(ManagedCert, slot_id)
            return row.lease_owner if row is not None else None

    def take_over(self, slot_id: int, old_owner: str, owner: str, seconds: float) -> bool:
        """Take a lease from ``old_owner`` (known to be dead) if it still holds it."""
        with session_scope(self.engine) as s:
            result = s.exec(
                update(ManagedCert)
                .where(col(ManagedCert.id) == slot_id, col(ManagedCert.lease_owner) == old_owner)
                .values(lease_owner=owner, lease_until=utcnow() + timedelta(seconds=seconds))
            )
            return bool(result.rowcount == 1)

    def release(self, slot_id: int, owner: str) -> None:
        with write_scope(self.engine) as c:
            c.execute(
                update(ManagedCert)
                .where(col(ManagedCert.id) == slot_id, col(ManagedCert.lease_owner) == owner)
                .values(lease_owner=None, lease_until=None)
            )
