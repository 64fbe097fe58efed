"""Reads for the due-decisions: what the renew check and the reminder pass decide from, for
every slot at once, as plain rows (SQLAlchemy Core, no ORM objects) in one query.

At 10,000 certificates building ORM objects cost more than the decisions themselves, and
a daemon tick made 40,000 of them to find that nothing was due.  A slot that is due is read
again as a model object under its lease, by the code that writes it
(:func:`certmgr.lifecycle.issue.renew_slot`).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select

from certmgr.pki.keytypes import SlotKey
from certmgr.store.base import StoreBase
from certmgr.store.deployments import MAX_BOUND_IDS
from certmgr.store.models import CertVersion, ManagedCert, decode_names


class SlotState(NamedTuple):
    """The columns of a slot that decide whether it is due, and what a reminder says of it."""

    id: int
    hostname: str
    key_alg: str
    key_type: str
    names: str  # JSON: read it as all_names
    issuer: str
    state: str
    current_version_id: int | None
    attempts: int
    last_error: str | None
    last_error_permanent: bool
    last_result: str | None
    next_retry_at: datetime | None
    renew_at: datetime | None

    @property
    def slot_key(self) -> SlotKey:
        return SlotKey(self.hostname, self.key_alg)

    @property
    def all_names(self) -> tuple[str, ...]:
        return decode_names(self.names)


class CurrentCert(NamedTuple):
    """The columns of a slot's current certificate that the due-decisions and reminders read."""

    id: int
    managed_id: int
    serial: str
    names: str  # JSON: read it as all_names
    key_type: str
    not_after: datetime
    created_at: datetime
    revoked_at: datetime | None
    source: str
    fullchain_path: str
    key_path: str

    @property
    def all_names(self) -> tuple[str, ...]:
        return decode_names(self.names)

    @classmethod
    def of(cls, version: CertVersion) -> CurrentCert:
        """The row of a version read as a model object."""
        return cls._make(getattr(version, f) for f in cls._fields)


Decisions = tuple[list[SlotState], dict[int, CurrentCert]]


class DecisionStore(StoreBase):
    def decision_rows(self, hostnames: set[str] | None = None) -> Decisions:
        """Every slot (or those of ``hostnames``), by hostname and key algorithm, and slot id ->
        its current certificate: one query (the slots joined to their current certificates)."""
        s = ManagedCert.__table__.c  # type: ignore[attr-defined]
        v = CertVersion.__table__.c  # type: ignore[attr-defined]
        width = len(SlotState._fields)
        q = (select(*(s[f] for f in SlotState._fields), *(v[f] for f in CurrentCert._fields))
             .outerjoin_from(ManagedCert.__table__, CertVersion.__table__,  # type: ignore[attr-defined]
                             v.id == s.current_version_id)
             .order_by(s.hostname, s.key_alg))
        if hostnames is not None and len(hostnames) <= MAX_BOUND_IDS:
            q = q.where(s.hostname.in_(sorted(hostnames)))
        slots: list[SlotState] = []
        current: dict[int, CurrentCert] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                slot = SlotState._make(r[:width])
                if hostnames is not None and slot.hostname not in hostnames:
                    continue
                slots.append(slot)
                if r[width] is not None:
                    current[slot.id] = CurrentCert._make(r[width:])
        return slots, current
