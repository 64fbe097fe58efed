"""The DANE rollover and MTA-STS tables: one row per MTA and per domain, each the JSON of what
its engine recorded (:class:`certmgr.dns.rollover.Rollover`, :class:`certmgr.dns.mtasts.Published`),
and the keys generated ahead (their path and identity; the key itself stays a 0600 file).

One node at a time: a step is carried out only under a lease on its row (``lease_owner``,
``lease_until``), taken with a conditional UPDATE like :meth:`certmgr.store.Store.claim`, so
two nodes sharing a PostgreSQL database never act on the same rollover or domain at once, and
a dead node's lease runs out (or is taken over at once by a process of the same machine).

State written as files by earlier versions (``<state_dir>/dane/<host>/state.json``,
``<state_dir>/mta-sts/<domain>/state.json``) is imported on first use and the files renamed
``state.json.imported``; a row already in the store wins over a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from certmgr.store import Store, utcnow
from certmgr.store.db import session_scope
from certmgr.store.models import DaneNextKey, DaneState, MtaStsState
from certmgr.store.rows import DANE as DANE
from certmgr.store.rows import MTA_STS as MTA_STS
from certmgr.store.rows import NO_STATE, Rows, engine_query, legacy_files
from certmgr.store.rows import Snapshot as Snapshot

_TABLES: dict[str, Any] = {DANE: DaneState, MTA_STS: MtaStsState}
_NONE = NO_STATE  # a row made by a first lease, before anything was recorded
_IMPORTED: set[tuple[str, str]] = set()  # (database URL, state dir) already looked at by this process


def default_store(state_dir: Path) -> Store:
    """The store of a state directory whose config leaves ``database`` unset."""
    return Store(f"sqlite:///{state_dir / 'certmgr.db'}")


def _key(table: Any) -> Any:
    return col(table.hostname) if table is DaneState else col(table.domain)


class DnsStore:
    """The DANE/MTA-STS rows of ``store``; the files of ``state_dir`` imported on first use."""

    def __init__(self, store: Store, state_dir: Path) -> None:
        self.store = store
        self.state_dir = state_dir
        key = (str(store.engine.url), str(state_dir))
        if key not in _IMPORTED and store.cannot_write() is None and not store.read_only:
            self.import_files()
            _IMPORTED.add(key)

    # -- state ---------------------------------------------------------------

    def load(self, kind: str, name: str) -> str | None:
        with session_scope(self.store.engine) as s:
            row = s.get(_TABLES[kind], name)
            return None if row is None or row.state == _NONE else str(row.state)

    def save(self, kind: str, name: str, text: str) -> None:
        table = _TABLES[kind]
        with session_scope(self.store.engine) as s:
            row = s.get(table, name)
            if row is None:
                s.add(table(**{_key(table).key: name}, state=text, updated_at=utcnow()))
            else:
                row.state, row.updated_at = text, utcnow()
                s.add(row)

    def snapshot(self) -> Snapshot:
        """Everything recorded, in one query per table (what `status` and `check` read through
        :meth:`certmgr.store.rows.Rows.dns_snapshot`)."""
        return Rows(self.store.url, engine_query(self.store.engine)).dns_snapshot(self.state_dir)

    def import_files(self) -> int:
        """Import the state files of earlier versions once; returns how many were imported."""
        n = 0
        for kind in (DANE, MTA_STS):
            for name, path in legacy_files(self.state_dir, kind).items():
                try:
                    with session_scope(self.store.engine) as s:
                        row = s.get(_TABLES[kind], name)
                        if row is not None and row.state == _NONE:
                            row.state = path.read_text()
                            s.add(row)
                            n += 1
                        elif row is None:
                            s.add(_TABLES[kind](**{_key(_TABLES[kind]).key: name}, state=path.read_text(),
                                                updated_at=utcnow()))
                            n += 1
                except IntegrityError:
                    pass  # imported at the same moment by another process
                path.replace(path.with_name(path.name + ".imported"))
        return n

    # -- leases --------------------------------------------------------------

    def claim(self, kind: str, name: str, owner: str, seconds: float, now: datetime | None = None) -> bool:
        """Take the lease on one MTA's rollover or one domain for ``seconds`` unless another
        owner holds a live one (the row is made when missing)."""
        table = _TABLES[kind]
        now = now or utcnow()
        try:
            with session_scope(self.store.engine) as s:
                if s.get(table, name) is None:
                    s.add(table(**{_key(table).key: name}, state=_NONE, updated_at=now,
                                lease_owner=owner, lease_until=now + timedelta(seconds=seconds)))
                    return True
        except IntegrityError:
            pass  # made at the same moment by another node: the UPDATE below decides
        with session_scope(self.store.engine) as s:
            moved = s.exec(update(table)
                           .where(_key(table) == name,
                                  or_(col(table.lease_until).is_(None), col(table.lease_until) < now,
                                      col(table.lease_owner) == owner))
                           .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds)))
            return bool(moved.rowcount == 1)

    def holder(self, kind: str, name: str) -> str | None:
        with session_scope(self.store.engine) as s:
            row = s.get(_TABLES[kind], name)
            return None if row is None else row.lease_owner

    def take_over(self, kind: str, name: str, old_owner: str, owner: str, seconds: float) -> bool:
        table = _TABLES[kind]
        with session_scope(self.store.engine) as s:
            moved = s.exec(update(table)
                           .where(_key(table) == name, col(table.lease_owner) == old_owner)
                           .values(lease_owner=owner, lease_until=utcnow() + timedelta(seconds=seconds)))
            return bool(moved.rowcount == 1)

    def release(self, kind: str, name: str, owner: str) -> None:
        table = _TABLES[kind]
        with session_scope(self.store.engine) as s:
            s.exec(update(table)
                   .where(_key(table) == name, col(table.lease_owner) == owner)
                   .values(lease_owner=None, lease_until=None))

    @contextmanager
    def lease(self, kind: str, name: str, owner: str, seconds: float,
              is_dead: Callable[[str], bool] = lambda owner: False) -> Iterator[bool]:
        """Hold the lease for the block (yields False, holding nothing, when another node has
        it); a holder ``is_dead`` says is gone is taken over at once."""
        held = self.claim(kind, name, owner, seconds)
        if not held:
            old = self.holder(kind, name)
            held = bool(old and old != owner and is_dead(old) and self.take_over(kind, name, old, owner, seconds))
        try:
            yield held
        finally:
            if held:
                self.release(kind, name, owner)

    # -- keys generated ahead ------------------------------------------------

    def record_next_key(self, hostname: str, key_type: str, path: Path, spki_sha256: str) -> None:
        with session_scope(self.store.engine) as s:
            row = s.get(DaneNextKey, (hostname, key_type)) or DaneNextKey(
                hostname=hostname, key_type=key_type, path=str(path), spki_sha256=spki_sha256, created_at=utcnow())
            row.path, row.spki_sha256, row.created_at = str(path), spki_sha256, utcnow()
            s.add(row)

    def next_keys(self, hostname: str) -> dict[str, DaneNextKey]:
        with session_scope(self.store.engine) as s:
            return {r.key_type: r for r in s.exec(select(DaneNextKey).where(col(DaneNextKey.hostname) == hostname))}
