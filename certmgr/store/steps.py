"""Lifecycle steps, orders and the event log: each step of a renewal is one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, bindparam, insert, update
from sqlmodel import col, select

from certmgr.store.base import StoreBase, add_event, assign, take_lease, utcnow
from certmgr.store.db import session_scope, write_scope
from certmgr.store.models import CertVersion, Event, ManagedCert, OrderAttempt

#: the statements of the lifecycle steps, built once (a statement built per call cost more CPU
#: than its execution, at a dozen steps per certificate); the columns they set come from the
#: parameters of each call
_ORDER = update(OrderAttempt).where(col(OrderAttempt.id) == bindparam("order_id"))
_SLOT = update(ManagedCert).where(col(ManagedCert.id) == bindparam("slot_id"))
#: the slot made current only by the holder of its lease (None, None releases it)
_SLOT_HELD = _SLOT.where(col(ManagedCert.lease_owner) == bindparam("holder"))
_SLOT_NAME = select(col(ManagedCert.hostname), col(ManagedCert.key_alg)).where(
    col(ManagedCert.id) == bindparam("slot_id"))
_NEW_ORDER = insert(OrderAttempt)
_NEW_VERSION = insert(CertVersion)
_VERSION_BY_SHA = select(col(CertVersion.id), col(CertVersion.managed_id)).where(
    col(CertVersion.sha256) == bindparam("sha"))


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


class StepStore(StoreBase):
    def start_renewal(self, slot_id: int, issuer: str, node: str, hostname: str, key_alg: str,
                      reason: str) -> int:
        """Open an order attempt and log ``renewal_started``; the order's id."""
        now = utcnow()
        with write_scope(self.engine) as c:
            add_event(c, "renewal_started", hostname, key_alg, {"reason": reason, "node": node}, now)
            result = c.execute(_NEW_ORDER, {"managed_id": slot_id, "issuer": issuer, "node": node,
                                            "state": "started", "started_at": now, "updated_at": now})
            return _new_id(result)

    def key_ready(self, slot_id: int, hostname: str, key_alg: str, key_type: str, key_path: str,
                  csr: str | None = None) -> None:
        """The key to certify is on disk: remember it as pending with its CSR (an order
        follows; no order of an older key is resumed) and log ``key_ready``."""
        now = utcnow()
        with write_scope(self.engine) as c:
            c.execute(_SLOT, {"slot_id": slot_id, "pending_key_path": key_path, "pending_csr": csr,
                              "pending_order_url": None, "pending_since": now, "state": "key_ready",
                              "updated_at": now})
            add_event(c, "key_ready", hostname, key_alg, {"key_path": key_path, "key_type": key_type}, now)

    def record_step(self, slot_id: int, order_id: int, owner: str, lease_seconds: float, step: str,
                    hostname: str, key_alg: str, detail: Mapping[str, Any]) -> bool:
        """One ACME step of an order, in one transaction: the order's state (and its URL once
        created, also kept on the slot so an interrupted run resumes it), the event, and
        ``owner``'s lease on the slot extended.  Returns whether ``owner`` still holds the
        lease; when not (another node took over), the step is recorded all the same -- it
        happened -- and the caller stops."""
        now = utcnow()
        order_url = detail.get("order_url") if step == "order_created" else None
        with write_scope(self.engine) as c:
            c.execute(_ORDER, {"order_id": order_id, "state": step, "updated_at": now,
                               **({"order_url": order_url} if order_url else {})})
            if order_url:
                c.execute(_SLOT, {"slot_id": slot_id, "pending_order_url": order_url, "state": "order_pending",
                                  "updated_at": now})
            add_event(c, step, hostname, key_alg, detail, now)
            return take_lease(c, slot_id, owner, lease_seconds, now)

    def record_certificate(self, version: CertVersion, owner: str, lease_seconds: float) -> CertVersion | None:
        """The certificate an order returned, in one transaction with ``owner``'s heartbeat on its
        slot: the stored row (the same certificate recorded by a run that died before making it
        current is reused), or None, with nothing recorded, when another node holds the lease."""
        with write_scope(self.engine) as c:
            if not take_lease(c, version.managed_id, owner, lease_seconds, utcnow()):
                return None
            stored = c.execute(_VERSION_BY_SHA, {"sha": version.sha256}).first()
            if stored is None or stored.managed_id != version.managed_id:
                version.id = _new_id(c.execute(_NEW_VERSION, version.model_dump(exclude={"id"})))
                return version
        with session_scope(self.engine) as s:  # recorded by an interrupted run: that row
            return s.get(CertVersion, stored.id)

    def record_issued(self, slot_id: int, order_id: int, owner: str, slot_fields: Mapping[str, Any],
                      detail: Mapping[str, Any]) -> bool:
        """Make a certificate current, close its order and log ``issued`` in one transaction,
        so that a crash leaves all three done or none; and only while ``owner`` still holds the
        slot's lease (a conditional UPDATE, atomic on SQLite and PostgreSQL), so a node that lost
        it cannot overwrite its successor's work.  The lease is released with it (the renewal is
        done).  False, with nothing changed, when the lease is another's."""
        now = utcnow()
        with write_scope(self.engine) as c:
            fields = {**slot_fields, "lease_owner": None, "lease_until": None, "updated_at": now}
            if c.execute(_SLOT_HELD, {"slot_id": slot_id, "holder": owner, **fields}).rowcount != 1:
                return False
            c.execute(_ORDER, {"order_id": order_id, "state": "issued", "updated_at": now})
            hostname, key_alg = c.execute(_SLOT_NAME, {"slot_id": slot_id}).one()
            add_event(c, "issued", hostname, key_alg, detail, now)
        return True

    # ------------------------------------------------------------------ orders and events

    def update_order(self, order_id: int, **fields: Any) -> None:
        with session_scope(self.engine) as s:
            row = s.get(OrderAttempt, order_id)
            assert row is not None
            assign(row, fields)
            row.updated_at = utcnow()
            s.add(row)

    def orders(self, slot_id: int | None = None) -> list[OrderAttempt]:
        with session_scope(self.engine) as s:
            q = select(OrderAttempt).order_by(col(OrderAttempt.id))
            if slot_id is not None:
                q = q.where(OrderAttempt.managed_id == slot_id)
            return list(s.exec(q))

    def log(self, kind: str, hostname: str | None = None, key_alg: str | None = None,
            detail: Mapping[str, Any] | None = None) -> None:
        with write_scope(self.engine) as c:
            add_event(c, kind, hostname, key_alg, detail or {}, utcnow())

    def events(self, hostname: str | None = None, kind: str | None = None) -> list[Event]:
        with session_scope(self.engine) as s:
            q = select(Event).order_by(col(Event.id))
            if hostname:
                q = q.where(Event.hostname == hostname)
            if kind:
                q = q.where(Event.kind == kind)
            return list(s.exec(q))
