"""What every part of :class:`certmgr.store.Store` shares: its engines, the clock, and the
helpers that build rows and statements."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, insert, or_, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from certmgr.store.db import session_scope
from certmgr.store.models import Event, ManagedCert
from certmgr.times import utcnow

__all__ = ["StoreBase", "add_event", "assign", "event_row", "take_lease", "utcnow"]

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


#: the conditional UPDATE that takes or extends a lease on a slot (one row or none), built once:
#: a statement built per call cost more CPU than its execution, and it runs at every lifecycle step
_LEASE = (
    update(ManagedCert)
    .where(
        col(ManagedCert.id) == bindparam("lease_slot"),
        or_(
            col(ManagedCert.lease_until).is_(None),
            col(ManagedCert.lease_until) < bindparam("lease_now"),
            col(ManagedCert.lease_owner) == bindparam("lease_holder"),
        ),
    )
)


def take_lease(conn: Connection, slot_id: int, owner: str, seconds: float, now: datetime) -> bool:
    """Take or extend ``owner``'s lease on a slot in ``conn``'s transaction; whether it is held."""
    params = {"lease_slot": slot_id, "lease_now": now, "lease_holder": owner,
              "lease_owner": owner, "lease_until": now + timedelta(seconds=seconds)}
    return bool(conn.execute(_LEASE, params).rowcount == 1)


def assign(row: Any, fields: Mapping[str, Any]) -> None:
    """Set columns of ``row``; a name that is not a column is a programming error."""
    for k, v in fields.items():
        if not hasattr(row, k):
            raise AttributeError(k)
        setattr(row, k, v)


#: the INSERT of an event, built once (its columns come from the parameters)
_EVENT = insert(Event)


def add_event(conn: Connection, kind: str, hostname: str | None, key_alg: str | None,
              detail: Mapping[str, Any], ts: datetime) -> None:
    """Log an event in ``conn``'s transaction (see :func:`certmgr.store.db.write_scope`)."""
    conn.execute(_EVENT, {"ts": ts, "hostname": hostname, "key_alg": key_alg, "kind": kind,
                          "detail": json.dumps(dict(detail), default=str)})


def event_row(kind: str, hostname: str | None, key_alg: str | None, detail: Mapping[str, Any],
              ts: datetime) -> Event:
    return Event(ts=ts, hostname=hostname, key_alg=key_alg, kind=kind, detail=json.dumps(dict(detail), default=str))
