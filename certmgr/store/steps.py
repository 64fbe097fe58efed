"""Lifecycle steps, orders and the event log: each step of a renewal is one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from certmgr.store.base import StoreBase, assign, event_row, event_values, lease_update, utcnow
from certmgr.store.db import session_scope, write_scope
from certmgr.store.models import CertVersion, Event, ManagedCert, OrderAttempt


class StepStore(StoreBase):
    def start_renewal(self, slot_id: int, issuer: str, node: str, hostname: str, key_alg: str,
                      reason: str) -> int:
        """Open an order attempt and log ``renewal_started``; the order's id."""
        now = utcnow()
        with session_scope(self.engine) as s:
            s.add(event_row("renewal_started", hostname, key_alg, {"reason": reason, "node": node}, now))
            row = OrderAttempt(managed_id=slot_id, issuer=issuer, node=node, started_at=now, updated_at=now)
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def key_ready(self, slot_id: int, hostname: str, key_alg: str, key_type: str, key_path: str,
                  csr: str | None = None) -> None:
        """The key to certify is on disk: remember it as pending with its CSR (an order
        follows; no order of an older key is resumed) and log ``key_ready``."""
        now = utcnow()
        with write_scope(self.engine) as c:
            c.execute(update(ManagedCert).where(col(ManagedCert.id) == slot_id).values(
                pending_key_path=key_path, pending_csr=csr, pending_order_url=None, pending_since=now,
                state="key_ready", updated_at=now))
            c.execute(event_values("key_ready", hostname, key_alg, {"key_path": key_path, "key_type": key_type}, now))

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
            c.execute(update(OrderAttempt).where(col(OrderAttempt.id) == order_id).values(
                state=step, updated_at=now, **({"order_url": order_url} if order_url else {})))
            if order_url:
                c.execute(update(ManagedCert).where(col(ManagedCert.id) == slot_id).values(
                    pending_order_url=order_url, state="order_pending", updated_at=now))
            c.execute(event_values(step, hostname, key_alg, detail, now))
            held = c.execute(lease_update(slot_id, owner, lease_seconds, now)).rowcount == 1
        return bool(held)

    def record_certificate(self, version: CertVersion, owner: str, lease_seconds: float) -> CertVersion | None:
        """The certificate an order returned, in one transaction with ``owner``'s heartbeat on its
        slot: the stored row (the same certificate recorded by a run that died before making it
        current is reused), or None, with nothing recorded, when another node holds the lease."""
        now = utcnow()
        with session_scope(self.engine) as s:
            if s.exec(lease_update(version.managed_id, owner, lease_seconds, now)).rowcount != 1:
                return None
            stored = s.exec(select(CertVersion).where(CertVersion.sha256 == version.sha256)).first()
            if stored is not None and stored.managed_id == version.managed_id:
                return stored
            s.add(version)
            s.flush()
            s.refresh(version)
            return version

    def record_issued(self, slot_id: int, order_id: int, owner: str, slot_fields: Mapping[str, Any],
                      detail: Mapping[str, Any]) -> bool:
        """Make a certificate current, close its order and log ``issued`` in one transaction,
        so that a crash leaves all three done or none; and only while ``owner`` still holds the
        slot's lease (row-locked), so a node that lost it cannot overwrite its successor's work.
        The lease is released with it (the renewal is done).  False, with nothing changed, when
        the lease is another's."""
        now = utcnow()
        with session_scope(self.engine) as s:
            slot = s.get(ManagedCert, slot_id, with_for_update=True)
            order = s.get(OrderAttempt, order_id)
            assert slot is not None and order is not None
            if slot.lease_owner != owner:
                return False
            assign(slot, slot_fields)
            slot.lease_owner = slot.lease_until = None
            slot.updated_at = order.updated_at = now
            order.state = "issued"
            s.add(slot)
            s.add(order)
            s.add(event_row("issued", slot.hostname, slot.key_alg, detail, now))
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
            c.execute(event_values(kind, hostname, key_alg, detail or {}, utcnow()))

    def events(self, hostname: str | None = None, kind: str | None = None) -> list[Event]:
        with session_scope(self.engine) as s:
            q = select(Event).order_by(col(Event.id))
            if hostname:
                q = q.where(Event.hostname == hostname)
            if kind:
                q = q.where(Event.kind == kind)
            return list(s.exec(q))
