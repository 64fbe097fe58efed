"""Inventory and history: the only module that opens database sessions.

Callers get detached model objects (plain values) back; every change is one
short transaction.  Work on a certificate slot is claimed with a lease (a single
conditional UPDATE, atomic on SQLite and PostgreSQL alike), so two processes or
nodes never renew the same certificate at once, and a dead node's claim expires.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, func, or_, update
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

__all__ = ["AcmeAccount", "CertVersion", "Deployment", "Event", "ManagedCert", "OrderAttempt", "SlotSpec", "Store"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class SlotSpec(NamedTuple):
    """What the config says about one certificate slot."""

    hostname: str
    key_alg: str
    key_type: str
    names: Sequence[str]
    issuer: str


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
        rows = self.sync_slots([SlotSpec(hostname, key_alg, key_type, list(names), issuer)])
        return next(r for r in rows if (r.hostname, r.key_alg) == (hostname, key_alg))

    def sync_slots(self, wanted: Sequence[SlotSpec]) -> list[ManagedCert]:
        """Create or update the slots of the config and return every slot, in one transaction
        whose statements do not grow with the inventory (one SELECT; one batched INSERT of new
        slots; an UPDATE only for slots whose key type, names or issuer changed)."""
        try:
            return self._sync_slots(wanted)
        except IntegrityError:
            # another process inserted one of these slots between our SELECT and INSERT: use its rows
            return self._sync_slots(wanted)

    def _sync_slots(self, wanted: Sequence[SlotSpec]) -> list[ManagedCert]:
        now = utcnow()
        with session_scope(self.engine) as s:
            rows = {(r.hostname, r.key_alg): r for r in s.exec(select(ManagedCert))}
            for spec in wanted:
                names_json = json.dumps(list(spec.names))
                row = rows.get((spec.hostname, spec.key_alg))
                if row is None:
                    rows[(spec.hostname, spec.key_alg)] = row = ManagedCert(
                        hostname=spec.hostname, key_alg=spec.key_alg, key_type=spec.key_type, names=names_json,
                        issuer=spec.issuer, state="planned", updated_at=now)
                    s.add(row)
                elif (row.key_type, row.names, row.issuer) != (spec.key_type, names_json, spec.issuer):
                    row.key_type, row.names, row.issuer, row.updated_at = spec.key_type, names_json, spec.issuer, now
                    s.add(row)
            s.flush()
            return sorted(rows.values(), key=lambda r: (r.hostname, r.key_alg))

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

    def slots(self, hostnames: Collection[str] | None = None) -> list[ManagedCert]:
        """Every slot, or those of ``hostnames``."""
        q = select(ManagedCert).order_by(col(ManagedCert.hostname), col(ManagedCert.key_alg))
        if hostnames is not None:
            q = q.where(col(ManagedCert.hostname).in_(sorted(hostnames)))
        with session_scope(self.engine) as s:
            return list(s.exec(q))

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
            return bool(s.exec(_lease_update(slot_id, owner, seconds, now)).rowcount == 1)

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

    # ------------------------------------------------------------------ lifecycle steps (one transaction each)

    def start_renewal(self, slot_id: int, issuer: str, node: str, hostname: str, key_alg: str,
                      reason: str) -> int:
        """Open an order attempt and log ``renewal_started``; the order's id."""
        now = utcnow()
        with session_scope(self.engine) as s:
            s.add(_event("renewal_started", hostname, key_alg, {"reason": reason, "node": node}, now))
            row = OrderAttempt(managed_id=slot_id, issuer=issuer, node=node, started_at=now, updated_at=now)
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

    def key_ready(self, slot_id: int, hostname: str, key_alg: str, key_type: str, key_path: str) -> None:
        """The key to certify is on disk: remember it as pending (a fresh CSR and order follow)
        and log ``key_ready``."""
        now = utcnow()
        with session_scope(self.engine) as s:
            s.exec(update(ManagedCert).where(col(ManagedCert.id) == slot_id).values(
                pending_key_path=key_path, pending_csr=None, pending_order_url=None, pending_since=now,
                state="key_ready", updated_at=now))
            s.add(_event("key_ready", hostname, key_alg, {"key_path": key_path, "key_type": key_type}, now))

    def record_step(self, slot_id: int, order_id: int, owner: str, lease_seconds: float, step: str,
                    hostname: str, key_alg: str, detail: Mapping[str, Any]) -> bool:
        """One ACME step of an order, in one transaction: the order's state (and its URL once
        created, also kept on the slot so an interrupted run resumes it), the event, and
        ``owner``'s lease on the slot extended.  Returns whether ``owner`` still holds the
        lease; when not (another node took over), the step is recorded all the same -- it
        happened -- and the caller stops."""
        now = utcnow()
        order_url = detail.get("order_url") if step == "order_created" else None
        with session_scope(self.engine) as s:
            s.exec(update(OrderAttempt).where(col(OrderAttempt.id) == order_id).values(
                state=step, updated_at=now, **({"order_url": order_url} if order_url else {})))
            if order_url:
                s.exec(update(ManagedCert).where(col(ManagedCert.id) == slot_id).values(
                    pending_order_url=order_url, state="order_pending", updated_at=now))
            s.add(_event(step, hostname, key_alg, detail, now))
            held = s.exec(_lease_update(slot_id, owner, lease_seconds, now)).rowcount == 1
        return bool(held)

    # ------------------------------------------------------------------ orders and events

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
            elif result != "waiting":  # waiting on DNS (DANE rollover) is not a failure
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


def _lease_update(slot_id: int, owner: str, seconds: float, now: datetime) -> Any:
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


def _assign(row: Any, fields: Mapping[str, Any]) -> None:
    """Set columns of ``row``; a name that is not a column is a programming error."""
    for k, v in fields.items():
        if not hasattr(row, k):
            raise AttributeError(k)
        setattr(row, k, v)


def _event(kind: str, hostname: str | None, key_alg: str | None, detail: Mapping[str, Any],
           ts: datetime) -> Event:
    return Event(ts=ts, hostname=hostname, key_alg=key_alg, kind=kind, detail=json.dumps(dict(detail), default=str))
