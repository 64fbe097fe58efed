"""Inventory and history: the only module that opens database sessions.

Callers get detached model objects (plain values) back; every change is one
short transaction.  Work on a certificate slot is claimed with a lease (a single
conditional UPDATE, atomic on SQLite and PostgreSQL alike), so two processes or
nodes never renew the same certificate at once, and a dead node's claim expires.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from certmgr.store.db import (
    SCHEMA_HEAD,
    can_write,
    current_revision,
    make_engine,
    migrate,
    read_only_engine,
    session_scope,
    sqlite_path,
)
from certmgr.store.models import (
    AcmeAccount,
    CertVersion,
    Deployment,
    Event,
    ManagedCert,
    OrderAttempt,
    ProbeRecord,
)

__all__ = ["AcmeAccount", "CertVersion", "Deployment", "Event", "ManagedCert", "OrderAttempt", "Store"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """The inventory.  ``read_only`` (status, check, metrics, calendar): an existing SQLite
    database at the current schema is opened without writing (see :func:`read_only_engine`),
    so those commands work on a full disk or a read-only state directory."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.url = url
        self.read_only = False
        self._writer: Engine | None = None
        path = sqlite_path(url)
        if read_only and path is not None and path.exists():
            engine = read_only_engine(path)
            if current_revision(engine) == SCHEMA_HEAD:
                self.engine, self.read_only = engine, True
                return
            engine.dispose()  # an older schema: migrate it (this writes) as any command would
        self.engine = make_engine(url)
        migrate(self.engine)

    def cannot_write(self) -> str | None:
        """Why a write would fail now, or None (read-only commands skip what they would store)."""
        return can_write(self.url)

    def close(self) -> None:
        self.engine.dispose()
        if self._writer is not None:
            self._writer.dispose()

    # ------------------------------------------------------------------ inventory

    def sync_slot(self, hostname: str, key_alg: str, key_type: str, names: Iterable[str], issuer: str) -> ManagedCert:
        """Create or update the slot for (hostname, key_alg) from the config."""
        names = list(names)
        try:
            return self._sync_slot(hostname, key_alg, key_type, names, issuer)
        except IntegrityError:
            # another process inserted this slot between our SELECT and INSERT: use its row
            return self._sync_slot(hostname, key_alg, key_type, names, issuer)

    def _sync_slot(self, hostname: str, key_alg: str, key_type: str, names: list[str], issuer: str) -> ManagedCert:
        names_json = json.dumps(names)
        with session_scope(self.engine) as s:
            row = s.exec(
                select(ManagedCert).where(ManagedCert.hostname == hostname, ManagedCert.key_alg == key_alg)
            ).first()
            if row is None:
                row = ManagedCert(
                    hostname=hostname, key_alg=key_alg, key_type=key_type, names=names_json,
                    issuer=issuer, state="planned", updated_at=utcnow(),
                )
                s.add(row)
            elif (row.key_type, row.names, row.issuer) != (key_type, names_json, issuer):
                row.key_type, row.names, row.issuer = key_type, names_json, issuer
                row.updated_at = utcnow()
                s.add(row)
            s.flush()
            s.refresh(row)
            return row

    def slots(self) -> list[ManagedCert]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(ManagedCert).order_by(col(ManagedCert.hostname), col(ManagedCert.key_alg))))

    def slot(self, slot_id: int) -> ManagedCert:
        with session_scope(self.engine) as s:
            row = s.get(ManagedCert, slot_id)
            assert row is not None, f"slot {slot_id} vanished"
            return row

    def update_slot(self, slot_id: int, **fields: Any) -> ManagedCert:
        with session_scope(self.engine) as s:
            row = s.get(ManagedCert, slot_id)
            assert row is not None, f"slot {slot_id} vanished"
            _assign(row, fields)
            row.updated_at = utcnow()
            s.add(row)
            s.flush()
            s.refresh(row)
            return row

    # ------------------------------------------------------------------ leases

    def claim(self, slot_id: int, owner: str, seconds: float, now: datetime | None = None) -> bool:
        """Take the slot for ``seconds`` unless somebody else holds a live lease."""
        now = now or utcnow()
        with session_scope(self.engine) as s:
            result = s.exec(
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
            return bool(result.rowcount == 1)

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
        with session_scope(self.engine) as s:
            s.exec(
                update(ManagedCert)
                .where(col(ManagedCert.id) == slot_id, col(ManagedCert.lease_owner) == owner)
                .values(lease_owner=None, lease_until=None)
            )

    # ------------------------------------------------------------------ versions

    def add_version(self, version: CertVersion) -> CertVersion:
        with session_scope(self.engine) as s:
            s.add(version)
            s.flush()
            s.refresh(version)
            return version

    def version(self, version_id: int | None) -> CertVersion | None:
        if version_id is None:
            return None
        with session_scope(self.engine) as s:
            return s.get(CertVersion, version_id)

    def versions(self, slot_id: int) -> list[CertVersion]:
        with session_scope(self.engine) as s:
            q = select(CertVersion).where(CertVersion.managed_id == slot_id).order_by(col(CertVersion.id).desc())
            return list(s.exec(q))

    def has_versions(self) -> bool:
        """Has any certificate ever been recorded?"""
        with session_scope(self.engine) as s:
            return s.exec(select(CertVersion.id).limit(1)).first() is not None

    def version_by_sha256(self, sha256: str) -> CertVersion | None:
        with session_scope(self.engine) as s:
            return s.exec(select(CertVersion).where(CertVersion.sha256 == sha256)).first()

    def update_version(self, version_id: int, **fields: Any) -> None:
        with session_scope(self.engine) as s:
            row = s.get(CertVersion, version_id)
            assert row is not None
            _assign(row, fields)
            s.add(row)

    # ------------------------------------------------------------------ accounts

    def account(self, issuer: str, directory: str, node: str) -> AcmeAccount | None:
        """The ACME account ``node`` (a machine: its state dir holds the key) uses with a CA."""
        with session_scope(self.engine) as s:
            return s.exec(select(AcmeAccount).where(
                AcmeAccount.issuer == issuer, AcmeAccount.directory == directory, AcmeAccount.node == node
            )).first()

    def accounts_by_uri(self, uri: str) -> list[AcmeAccount]:
        """Every stored row of the ACME account ``uri`` (one per machine that holds its key)."""
        with session_scope(self.engine) as s:
            return list(s.exec(select(AcmeAccount).where(AcmeAccount.uri == uri).order_by(col(AcmeAccount.id))))

    def save_account(self, issuer: str, directory: str, node: str, uri: str | None, key_path: str,
                     contact: list[str]) -> None:
        try:
            self._save_account(issuer, directory, node, uri, key_path, contact)
        except IntegrityError:
            # a process of this node that registered at the same moment saved first: the newest wins
            self._save_account(issuer, directory, node, uri, key_path, contact)

    def _save_account(self, issuer: str, directory: str, node: str, uri: str | None, key_path: str,
                      contact: list[str]) -> None:
        with session_scope(self.engine) as s:
            row = s.exec(select(AcmeAccount).where(
                AcmeAccount.issuer == issuer, AcmeAccount.directory == directory, AcmeAccount.node == node
            )).first()
            now = utcnow()
            if row is None:
                row = AcmeAccount(issuer=issuer, directory=directory, node=node, key_path=key_path,
                                  created_at=now, updated_at=now)
            row.uri, row.key_path, row.contact, row.updated_at = uri, key_path, json.dumps(contact), now
            s.add(row)

    # ------------------------------------------------------------------ orders and events

    def start_order(self, slot_id: int, issuer: str, node: str) -> int:
        now = utcnow()
        with session_scope(self.engine) as s:
            row = OrderAttempt(managed_id=slot_id, issuer=issuer, node=node, started_at=now, updated_at=now)
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def update_order(self, order_id: int, **fields: Any) -> None:
        with session_scope(self.engine) as s:
            row = s.get(OrderAttempt, order_id)
            assert row is not None
            _assign(row, fields)
            row.updated_at = utcnow()
            s.add(row)

    def record_issued(self, slot_id: int, order_id: int, owner: str, slot_fields: Mapping[str, Any],
                      detail: Mapping[str, Any]) -> bool:
        """Make a certificate current, close its order and log ``issued`` in one transaction,
        so that a crash leaves all three done or none; and only while ``owner`` still holds the
        slot's lease (row-locked), so a node that lost it cannot overwrite its successor's work.
        False, with nothing changed, when the lease is another's."""
        now = utcnow()
        with session_scope(self.engine) as s:
            slot = s.get(ManagedCert, slot_id, with_for_update=True)
            order = s.get(OrderAttempt, order_id)
            assert slot is not None and order is not None
            if slot.lease_owner != owner:
                return False
            _assign(slot, slot_fields)
            slot.updated_at = order.updated_at = now
            order.state = "issued"
            s.add(slot)
            s.add(order)
            s.add(_event("issued", slot.hostname, slot.key_alg, detail, now))
        return True

    def orders(self, slot_id: int | None = None) -> list[OrderAttempt]:
        with session_scope(self.engine) as s:
            q = select(OrderAttempt).order_by(col(OrderAttempt.id))
            if slot_id is not None:
                q = q.where(OrderAttempt.managed_id == slot_id)
            return list(s.exec(q))

    def log(self, kind: str, hostname: str | None = None, key_alg: str | None = None,
            detail: Mapping[str, Any] | None = None) -> None:
        with session_scope(self.engine) as s:
            s.add(_event(kind, hostname, key_alg, detail or {}, utcnow()))

    def events(self, hostname: str | None = None, kind: str | None = None) -> list[Event]:
        with session_scope(self.engine) as s:
            q = select(Event).order_by(col(Event.id))
            if hostname:
                q = q.where(Event.hostname == hostname)
            if kind:
                q = q.where(Event.kind == kind)
            return list(s.exec(q))

    # ------------------------------------------------------------------ deployments and probes

    def add_deployment(self, row: Deployment) -> Deployment:
        with session_scope(self.engine) as s:
            s.add(row)
            s.flush()
            s.refresh(row)
            return row

    def last_deployment(self, slot_id: int) -> Deployment | None:
        with session_scope(self.engine) as s:
            q = select(Deployment).where(Deployment.managed_id == slot_id).order_by(col(Deployment.id).desc())
            return s.exec(q).first()

    def deployments(self, slot_id: int) -> list[Deployment]:
        """Newest first."""
        with session_scope(self.engine) as s:
            q = select(Deployment).where(Deployment.managed_id == slot_id).order_by(col(Deployment.id).desc())
            return list(s.exec(q))

    def failed_deployments(self, slot_ids: list[int]) -> dict[tuple[int, int], int]:
        """(slot, version) -> deployments that failed, for versions with no verified deployment."""
        if not slot_ids:
            return {}
        with session_scope(self.engine) as s:
            rows = s.exec(select(Deployment.managed_id, Deployment.version_id, Deployment.result)
                          .where(col(Deployment.managed_id).in_(slot_ids))).all()
        counts: dict[tuple[int, int], int] = {}
        verified: set[tuple[int, int]] = set()
        for managed_id, version_id, result in rows:
            key = (managed_id, version_id)
            if result == "verified":
                verified.add(key)
            else:
                counts[key] = counts.get(key, 0) + 1
        return {k: n for k, n in counts.items() if k not in verified}

    def add_probe(self, row: ProbeRecord) -> None:
        """Store a probe result (also from a read-only store: `check` keeps what it saw when it can)."""
        if self.read_only and self._writer is None:
            self._writer = make_engine(self.url)
        with session_scope(self._writer or self.engine) as s:
            s.add(row)

    def probes(self, hostname: str, limit: int) -> list[ProbeRecord]:
        """The newest ``limit`` probe results of ``hostname``, newest first."""
        with session_scope(self.engine) as s:
            q = (select(ProbeRecord).where(ProbeRecord.hostname == hostname)
                 .order_by(col(ProbeRecord.id).desc()).limit(limit))
            return list(s.exec(q))

    def last_probe(self, hostname: str) -> ProbeRecord | None:
        with session_scope(self.engine) as s:
            q = select(ProbeRecord).where(ProbeRecord.hostname == hostname).order_by(col(ProbeRecord.id).desc())
            return s.exec(q).first()


def _assign(row: Any, fields: Mapping[str, Any]) -> None:
    """Set columns of ``row``; a name that is not a column is a programming error."""
    for k, v in fields.items():
        if not hasattr(row, k):
            raise AttributeError(k)
        setattr(row, k, v)


def _event(kind: str, hostname: str | None, key_alg: str | None, detail: Mapping[str, Any],
           ts: datetime) -> Event:
    return Event(ts=ts, hostname=hostname, key_alg=key_alg, kind=kind, detail=json.dumps(dict(detail), default=str))
