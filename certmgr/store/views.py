"""Reads for what a command only displays or decides from: plain rows of the columns it needs
(SQLAlchemy Core, no ORM objects), every slot at once in one query each.  At 10,000
certificates building ORM objects cost more than the queries themselves.  (``status`` and
``metrics`` read the same rows without SQLAlchemy: :mod:`certmgr.store.rows`.)"""

from __future__ import annotations

from sqlalchemy import select

from certmgr.store.base import StoreBase
from certmgr.store.models import CertVersion, ManagedCert
from certmgr.store.rows import SlotRow, VersionRow


class ViewStore(StoreBase):
    def slot_rows(self) -> list[SlotRow]:
        """Every slot, by hostname and key algorithm, in one query."""
        c = ManagedCert.__table__.c  # type: ignore[attr-defined]
        q = select(*(c[f] for f in SlotRow._fields)).order_by(c.hostname, c.key_alg)
        with self.engine.connect() as conn:
            return [SlotRow._make(r) for r in conn.execute(q)]

    def history_rows(self) -> dict[int, list[VersionRow]]:
        """Slot id -> every certificate it ever had, newest first, in one query."""
        c = CertVersion.__table__.c  # type: ignore[attr-defined]
        out: dict[int, list[VersionRow]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(*(c[f] for f in VersionRow._fields)).order_by(c.id.desc())):
                v = VersionRow._make(r)
                out.setdefault(v.managed_id, []).append(v)
        return out
