"""The inventory: certificate slots as the config declares them, and the reads that return
what a command needs about every slot in a fixed number of queries."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection
from sqlmodel import col, select

from certmgr.store.base import StoreBase, assign, utcnow
from certmgr.store.db import read_scope, session_scope, write_scope
from certmgr.store.models import CertVersion, Deployment, ManagedCert, ProbeRecord


class SlotSpec(NamedTuple):
    """What the config says about one certificate slot."""

    hostname: str
    key_alg: str
    key_type: str
    names: Sequence[str]
    issuer: str


def _insert_missing(conn: Connection, table: Any) -> Any:
    """INSERT of slots that skips one another process created meanwhile (same hostname and key
    algorithm: ``uq_managed_host_alg``) instead of failing the transaction."""
    from sqlalchemy.dialects import postgresql, sqlite

    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["hostname", "key_alg"])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["hostname", "key_alg"])


class InventoryStore(StoreBase):
    def sync_slot(self, hostname: str, key_alg: str, key_type: str, names: Iterable[str], issuer: str) -> ManagedCert:
        """Create or update the slot for (hostname, key_alg) from the config."""
        self.write_slots([SlotSpec(hostname, key_alg, key_type, list(names), issuer)])
        return next(r for r in self.slots([hostname]) if r.key_alg == key_alg)

    def write_slots(self, wanted: Sequence[SlotSpec]) -> None:
        """Create or update the slots of the config in one transaction whose statements do not
        grow with the inventory (one SELECT of the columns the config sets; one batched INSERT
        of new slots; one batched UPDATE of slots whose key type, names or issuer changed)."""
        if self._write_slots(wanted):
            # another process may have inserted some of these slots between our SELECT and INSERT
            # (its row is kept, without an error): read them again and update what differs
            self._write_slots(wanted)

    def _write_slots(self, wanted: Sequence[SlotSpec]) -> bool:
        """One pass; whether it inserted slots (an insert that finds the slot is skipped)."""
        now = utcnow()
        t = ManagedCert.__table__  # type: ignore[attr-defined]
        with write_scope(self.engine) as conn:
            stored = {(r.hostname, r.key_alg): r for r in conn.execute(
                sa_select(t.c.id, t.c.hostname, t.c.key_alg, t.c.key_type, t.c.names, t.c.issuer))}
            new: list[dict[str, Any]] = []
            changed: list[dict[str, Any]] = []
            for spec in wanted:
                names_json = json.dumps(list(spec.names))
                row = stored.get((spec.hostname, spec.key_alg))
                if row is None:
                    new.append(ManagedCert(hostname=spec.hostname, key_alg=spec.key_alg, key_type=spec.key_type,
                                           names=names_json, issuer=spec.issuer, state="planned",
                                           updated_at=now).model_dump(exclude={"id"}))
                elif (row.key_type, row.names, row.issuer) != (spec.key_type, names_json, spec.issuer):
                    changed.append({"slot_id": row.id, "new_key_type": spec.key_type, "new_names": names_json,
                                    "new_issuer": spec.issuer, "now": now})
            if new:
                conn.execute(_insert_missing(conn, t), new)
            if changed:
                conn.execute(update(t).where(t.c.id == bindparam("slot_id")).values(
                    key_type=bindparam("new_key_type"), names=bindparam("new_names"),
                    issuer=bindparam("new_issuer"), updated_at=bindparam("now")), changed)
            return bool(new)

    def slots(self, hostnames: Collection[str] | None = None) -> list[ManagedCert]:
        """Every slot, or those of ``hostnames``."""
        q = select(ManagedCert).order_by(col(ManagedCert.hostname), col(ManagedCert.key_alg))
        if hostnames is not None:
            q = q.where(col(ManagedCert.hostname).in_(sorted(hostnames)))
        with session_scope(self.engine) as s:
            return list(s.exec(q))

    def slot(self, slot_id: int) -> ManagedCert:
        with read_scope(self.engine) as s:
            row = s.get(ManagedCert, slot_id)
            assert row is not None, f"slot {slot_id} vanished"
            return row

    def update_slot(self, slot_id: int, **fields: Any) -> ManagedCert:
        with session_scope(self.engine) as s:
            row = s.get(ManagedCert, slot_id)
            assert row is not None, f"slot {slot_id} vanished"
            assign(row, fields)
            row.updated_at = utcnow()
            s.add(row)
            s.flush()
            s.refresh(row)
            return row

    # ------------------------------------------------------------------ every slot at once

    def current_versions(self) -> dict[int, CertVersion]:
        """Slot id -> its current certificate, for every slot that has one, in one query."""
        with session_scope(self.engine) as s:
            q = select(ManagedCert.id, CertVersion).join(
                CertVersion, col(CertVersion.id) == col(ManagedCert.current_version_id))
            return {slot_id: v for slot_id, v in s.exec(q) if slot_id is not None}

    def histories(self) -> dict[int, list[CertVersion]]:
        """Slot id -> every certificate it ever had, newest first, in one query."""
        out: dict[int, list[CertVersion]] = {}
        with session_scope(self.engine) as s:
            for v in s.exec(select(CertVersion).order_by(col(CertVersion.id).desc())):
                out.setdefault(v.managed_id, []).append(v)
        return out

    def latest_deployments(self) -> dict[int, tuple[Deployment, Deployment | None]]:
        """Slot id -> (its newest deployment, its newest verified one), in one query."""
        newest = func.row_number().over(partition_by=col(Deployment.managed_id),
                                        order_by=col(Deployment.id).desc())
        verified = col(Deployment.result) == "verified"
        newest_of_kind = func.row_number().over(partition_by=(col(Deployment.managed_id), verified),
                                                order_by=col(Deployment.id).desc())
        ranked = select(col(Deployment.id).label("id"), newest.label("newest"),
                        newest_of_kind.label("newest_of_kind"), verified.label("verified")).subquery()
        q = (select(Deployment).join(ranked, ranked.c.id == col(Deployment.id))
             .where(or_(ranked.c.newest == 1, and_(ranked.c.verified, ranked.c.newest_of_kind == 1)))
             .order_by(col(Deployment.id).desc()))
        out: dict[int, tuple[Deployment, Deployment | None]] = {}
        with session_scope(self.engine) as s:
            for d in s.exec(q):  # newest first: the first row of a slot is its newest deployment
                last, last_verified = out.get(d.managed_id, (d, None))
                out[d.managed_id] = (last, last_verified or (d if d.result == "verified" else None))
        return out

    def recent_probes(self, limit: int) -> dict[str, list[ProbeRecord]]:
        """Hostname -> its newest ``limit`` probe results, newest first, in one query."""
        rank = func.row_number().over(partition_by=col(ProbeRecord.hostname), order_by=col(ProbeRecord.id).desc())
        ranked = select(col(ProbeRecord.id).label("id"), rank.label("rank")).subquery()
        q = (select(ProbeRecord).join(ranked, ranked.c.id == col(ProbeRecord.id))
             .where(ranked.c.rank <= limit).order_by(col(ProbeRecord.id).desc()))
        out: dict[str, list[ProbeRecord]] = {}
        with session_scope(self.engine) as s:
            for p in s.exec(q):
                if p.hostname is not None:
                    out.setdefault(p.hostname, []).append(p)
        return out
