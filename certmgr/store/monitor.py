"""The mail TLS monitor's tables (:class:`certmgr.monitor.storage.MonitorStorage` on the core store).

Exactly once: ``commit`` adds a batch's counts and moves the read position in one
transaction, and moves it only from the position this object loaded (a conditional
UPDATE), so a second collector that read the same lines at the same time fails
instead of counting them again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as sa_select  # sqlmodel's select types at most four columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from certmgr.errors import StateError
from certmgr.pki.names import comparable_name
from certmgr.store import Store
from certmgr.store.db import session_scope
from certmgr.store.models import (
    MonitorPlainPeer,
    MonitorPosition,
    MonitorSessions,
    MonitorTlsReport,
    MonitorTlsResult,
)
from certmgr.store.monitor_types import (
    HourCount,
    PeerCount,
    PeerKey,
    SessionKey,
    TlsReport,
    TlsRptFailure,
    TlsRptSummary,
    hour_range,
    tlsrpt_summary,
)

_Hourly = TypeVar("_Hourly", MonitorSessions, MonitorPlainPeer)


class MonitorStore:
    """A ``MonitorStorage`` on ``store`` (closed with it when opened by :meth:`at`)."""

    def __init__(self, store: Store, *, owned: bool = False) -> None:
        self.store = store
        self._owned = owned
        self._loaded: dict[str, str | None] = {}  # source -> the position text load_position saw

    @classmethod
    def at(cls, path: Path) -> MonitorStore:
        """The tables in the SQLite database ``path`` (made and migrated when new)."""
        return cls.open(f"sqlite:///{path}")

    @classmethod
    def open(cls, url: str) -> MonitorStore:
        """The tables in the database ``url``, on an engine of their own (closed by :meth:`close`)."""
        return cls(Store(url), owned=True)

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def load_position(self, source: str) -> dict[str, Any] | None:
        with session_scope(self.store.engine) as s:
            row = s.get(MonitorPosition, source)
            text = None if row is None else row.position
        self._loaded[source] = text
        return None if text is None else dict(json.loads(text))

    def commit(self, source: str, position: dict[str, Any], counts: Mapping[SessionKey, int],
               unparsed: int, plain_peers: Mapping[PeerKey, int] | None = None) -> None:
        text = json.dumps(position)
        if source not in self._loaded:
            self.load_position(source)
        old = self._loaded[source]
        try:
            with session_scope(self.store.engine) as s:
                if old is None:
                    s.add(MonitorPosition(source=source, position=text, unparsed=unparsed))
                    s.flush()  # a concurrent first run of the same source fails here (primary key)
                else:
                    moved = s.execute(update(MonitorPosition)
                                      .where(col(MonitorPosition.source) == source,
                                             col(MonitorPosition.position) == old)
                                      .values(position=text, unparsed=col(MonitorPosition.unparsed) + unparsed))
                    if moved.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult
                        raise _moved_elsewhere(source)
                # a key's fields in the order of the table's primary key
                _add_counts(s, MonitorSessions, {tuple(vars(k).values()): n for k, n in counts.items()})
                _add_counts(s, MonitorPlainPeer, {tuple(vars(k).values()): n for k, n in (plain_peers or {}).items()})
        except IntegrityError as e:
            raise _moved_elsewhere(source) from e
        self._loaded[source] = text

    def _hours(self, model: type[_Hourly], since: datetime, until: datetime) -> Sequence[_Hourly]:
        """The rows of ``model`` in the hours that overlap ``[since, until)``."""
        first, last = hour_range(since, until)
        table = model.__table__  # type: ignore[attr-defined]  # a SQLModel table class
        with session_scope(self.store.engine) as s:  # by primary key: the order of the read path too
            return s.exec(select(model).where(col(model.hour) >= first, col(model.hour) <= last)
                          .order_by(*table.primary_key.columns)).all()

    def sessions(self, since: datetime, until: datetime) -> Iterator[HourCount]:
        for r in self._hours(MonitorSessions, since, until):
            yield HourCount(SessionKey(r.hour, r.direction, r.domain, r.level, r.protocol), r.sessions)

    def plain_peers(self, since: datetime, until: datetime) -> Iterator[PeerCount]:
        for r in self._hours(MonitorPlainPeer, since, until):
            yield PeerCount(PeerKey(r.hour, r.direction, r.domain, r.host, r.address), r.sessions)

    def unparsed(self) -> dict[str, int]:
        with session_scope(self.store.engine) as s:
            return {r.source: r.unparsed for r in s.exec(select(MonitorPosition))}

    def add_tlsrpt(self, report: TlsReport, received: datetime) -> bool:
        try:
            with session_scope(self.store.engine) as s:
                if s.get(MonitorTlsReport, report.report_id) is not None:
                    return False
                s.add(MonitorTlsReport(report_id=report.report_id, organization=report.organization,
                                       start=report.start.astimezone(UTC), end=report.end.astimezone(UTC),
                                       received=received.astimezone(UTC)))
                s.flush()
                for p in report.policies:
                    s.add(MonitorTlsResult(report_id=report.report_id, policy_type=p.policy_type,
                                           policy_domain=p.policy_domain, result_type="success",
                                           sessions=p.successful))
                    for f in p.failures:
                        s.add(MonitorTlsResult(report_id=report.report_id, policy_type=p.policy_type,
                                               policy_domain=p.policy_domain, result_type=f.result_type,
                                               sessions=f.sessions,
                                               mx_host=comparable_name(f.receiving_mx_hostname)))
                    undetailed = p.failed - sum(f.sessions for f in p.failures)  # counted, not detailed
                    if undetailed > 0:
                        s.add(MonitorTlsResult(report_id=report.report_id, policy_type=p.policy_type,
                                               policy_domain=p.policy_domain, result_type="unspecified",
                                               sessions=undetailed))
        except IntegrityError:
            return False  # stored at the same moment by another receiver
        return True

    def tlsrpt(self, since: datetime, until: datetime) -> TlsRptSummary:
        window = (col(MonitorTlsReport.end) >= since, col(MonitorTlsReport.end) < until)
        with session_scope(self.store.engine) as s:
            reports = s.exec(select(func.count()).select_from(MonitorTlsReport).where(*window)).one()
            rows = s.exec(select(MonitorTlsResult.policy_type, MonitorTlsResult.result_type,
                                 func.sum(MonitorTlsResult.sessions))
                          .join(MonitorTlsReport, col(MonitorTlsReport.report_id) == col(MonitorTlsResult.report_id))
                          .where(*window)
                          .group_by(col(MonitorTlsResult.policy_type), col(MonitorTlsResult.result_type))).all()
        return tlsrpt_summary(int(reports), ((ptype, rtype, int(n)) for ptype, rtype, n in rows))

    def tlsrpt_failures(self, since: datetime) -> list[TlsRptFailure]:
        with session_scope(self.store.engine) as s:
            rows = s.execute(sa_select(col(MonitorTlsReport.organization), col(MonitorTlsResult.mx_host),
                                       col(MonitorTlsResult.result_type), func.sum(MonitorTlsResult.sessions),
                                       col(MonitorTlsReport.end))
                          .join(MonitorTlsReport, col(MonitorTlsReport.report_id) == col(MonitorTlsResult.report_id))
                          .where(col(MonitorTlsReport.end) > since, col(MonitorTlsResult.result_type) != "success")
                          .group_by(col(MonitorTlsReport.report_id), col(MonitorTlsResult.mx_host),
                                    col(MonitorTlsResult.result_type), col(MonitorTlsReport.organization),
                                    col(MonitorTlsReport.end))
                          .order_by(col(MonitorTlsReport.end), col(MonitorTlsReport.report_id),
                                    col(MonitorTlsResult.mx_host), col(MonitorTlsResult.result_type))).all()
        return [TlsRptFailure(org, mx, rt, int(n), end) for org, mx, rt, n, end in rows]


def _add_counts(s: Session, model: type[_Hourly], counts: Mapping[tuple[str, ...], int]) -> None:
    """Add ``counts`` (primary key → sessions) to the rows of ``model``: the keys already there
    read in one query per few hundred hours, then one UPDATE and one INSERT, each for many rows."""
    if not counts:
        return
    table = model.__table__  # type: ignore[attr-defined]  # a SQLModel table class
    keys = [c.name for c in table.primary_key.columns]
    hours = sorted({k[0] for k in counts})
    existing: set[tuple[str, ...]] = set()
    for i in range(0, len(hours), 500):  # under every database's limit of bound parameters
        cols = [table.c[k] for k in keys]
        existing.update(tuple(r) for r in s.execute(sa_select(*cols).where(table.c.hour.in_(hours[i:i + 500]))))
    old = [{**{f"k_{k}": v for k, v in zip(keys, key, strict=True)}, "n": n}
           for key, n in counts.items() if key in existing]
    new = [{**dict(zip(keys, key, strict=True)), "sessions": n} for key, n in counts.items() if key not in existing]
    if old:
        s.execute(update(table).where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
                  .values(sessions=table.c.sessions + bindparam("n")), old)
    if new:
        s.execute(insert(table), new)


def _moved_elsewhere(source: str) -> StateError:
    return StateError(f"the read position of {source} was moved by another collector at the same time; "
                      "nothing of this run was counted: run collect again")
