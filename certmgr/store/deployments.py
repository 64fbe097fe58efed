"""Deployments of certificates to MTAs, and the STARTTLS probe results."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from sqlmodel import col, select

from certmgr.store.base import StoreBase
from certmgr.store.db import make_engine, session_scope
from certmgr.store.models import Deployment, ProbeRecord

#: SQLite's older builds allow 999 bound parameters per statement: more ids than this are
#: not bound one by one (the rows are filtered after one unfiltered query)
MAX_BOUND_IDS = 500


class DeployTry(NamedTuple):
    """One deployment of a certificate, as the back-off sees it."""

    result: str
    started_at: datetime


class DeploymentStore(StoreBase):
    def add_deployment(self, row: Deployment) -> Deployment:
        return self._insert(row)

    def last_deployment(self, slot_id: int) -> Deployment | None:
        with session_scope(self.engine) as s:
            q = select(Deployment).where(Deployment.managed_id == slot_id).order_by(col(Deployment.id).desc())
            return s.exec(q).first()

    def deployments(self, slot_id: int) -> list[Deployment]:
        """Newest first."""
        with session_scope(self.engine) as s:
            q = select(Deployment).where(Deployment.managed_id == slot_id).order_by(col(Deployment.id).desc())
            return list(s.exec(q))

    def deploy_tries(self, slot_ids: Collection[int] | None = None) -> dict[tuple[int, int], list[DeployTry]]:
        """(slot, version) -> every deployment of that certificate (result and start), newest
        first, for every slot or those of ``slot_ids``: one query however many slots (ids beyond
        :data:`MAX_BOUND_IDS` are not bound: SQLite limits bound parameters)."""
        wanted = None if slot_ids is None else set(slot_ids)
        q = select(Deployment.managed_id, Deployment.version_id, Deployment.result, Deployment.started_at)
        if wanted is not None and len(wanted) <= MAX_BOUND_IDS:
            q = q.where(col(Deployment.managed_id).in_(sorted(wanted)))
        out: dict[tuple[int, int], list[DeployTry]] = {}
        with session_scope(self.engine) as s:
            for managed_id, version_id, result, started_at in s.exec(q.order_by(col(Deployment.id).desc())):
                if wanted is None or managed_id in wanted:
                    out.setdefault((managed_id, version_id), []).append(DeployTry(result, started_at))
        return out

    def failed_deployments(self, slot_ids: Collection[int]) -> dict[tuple[int, int], int]:
        """(slot, version) -> deployments that failed, for versions with no verified deployment."""
        if not slot_ids:
            return {}
        out = {}
        for key, tries in self.deploy_tries(slot_ids).items():
            # waiting on DNS (DANE rollover) is not a failure
            failed = [t for t in tries if t.result not in ("verified", "waiting")]
            if failed and len(failed) == len([t for t in tries if t.result != "waiting"]):
                out[key] = len(failed)
        return out

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
