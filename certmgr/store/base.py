"""What every part of :class:`certmgr.store.Store` shares: its engines, the clock, and the
helpers that build rows and statements."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import insert, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from certmgr.store.db import session_scope
from certmgr.store.models import Event, ManagedCert
from certmgr.times import utcnow

__all__ = ["StoreBase", "assign", "event_row", "event_values", "lease_update", "utcnow"]

RowT = TypeVar("RowT")


class StoreBase:
    """The engines a store part runs its transactions on (set up by :class:`certmgr.store.Store`)."""

    url: str
    engine: Engine
    read_only: bool
    _writer: Engine | None

    def _insert(self, row: RowT) -> RowT:
        """Insert ``row`` in a transaction of its own; it comes back with its id."""
        with session_scope(self.engine) as s:
            s.add(row)
            s.flush()
            s.refresh(row)
            return row


def lease_update(slot_id: int, owner: str, seconds: float, now: datetime) -> Any:
    """The conditional UPDATE that takes or extends ``owner``'s lease on a slot (one row or none)."""
    return (
        update(ManagedCert)
        .where(
            col(ManagedCert.id) == slot_id,
            or_(
                col(ManagedCert.lease_until).is_(None),
                col(ManagedCert.lease_until) < now,
                col(ManagedCert.lease_owner) == owner,
            ),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
    )


def assign(row: Any, fields: Mapping[str, Any]) -> None:
    """Set columns of ``row``; a name that is not a column is a programming error."""
    for k, v in fields.items():
        if not hasattr(row, k):
            raise AttributeError(k)
        setattr(row, k, v)


def event_values(kind: str, hostname: str | None, key_alg: str | None, detail: Mapping[str, Any],
                 ts: datetime) -> Any:
    """The INSERT of an event (for :func:`certmgr.store.db.write_scope`)."""
    return insert(Event).values(ts=ts, hostname=hostname, key_alg=key_alg, kind=kind,
                                detail=json.dumps(dict(detail), default=str))


def event_row(kind: str, hostname: str | None, key_alg: str | None, detail: Mapping[str, Any],
              ts: datetime) -> Event:
    return Event(ts=ts, hostname=hostname, key_alg=key_alg, kind=kind, detail=json.dumps(dict(detail), default=str))
