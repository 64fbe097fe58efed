"""Certificate versions: every certificate a slot ever had."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from certmgr.store.base import StoreBase, assign
from certmgr.store.db import read_scope, session_scope
from certmgr.store.models import CertVersion


class VersionStore(StoreBase):
    def add_version(self, version: CertVersion) -> CertVersion:
        return self._insert(version)

    def version(self, version_id: int | None) -> CertVersion | None:
        if version_id is None:
            return None
        with read_scope(self.engine) as s:
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
            assign(row, fields)
            s.add(row)
