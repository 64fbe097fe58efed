"""Where the collector keeps its read positions and hourly aggregates.

A contract, not a class: ``MonitorStorage``.  The one rule that makes the
collector exactly-once: ``commit`` adds the counts of a batch and moves the
read position *in one transaction* — after a crash either both happened or
neither did.

``SqliteMonitorStorage`` is a standalone implementation (stdlib ``sqlite3``);
the tables are small: one row per hour, direction, domain, level and protocol.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from certmgr.monitor.tlsrpt import TlsReport


@dataclass(frozen=True, order=True)
class SessionKey:
    hour: str  # ISO 8601 UTC, truncated to the hour: "2026-11-30T03:00:00+00:00"
    direction: str
    domain: str
    level: str
    protocol: str


@dataclass(frozen=True)
class HourCount:
    key: SessionKey
    sessions: int


class MonitorStorage(Protocol):
    def load_position(self, source: str) -> dict[str, Any] | None:
        """The position ``commit`` stored last for ``source``, or None."""
        ...

    def commit(self, source: str, position: dict[str, Any], counts: Mapping[SessionKey, int],
               unparsed: int) -> None:
        """Add ``counts`` and ``unparsed``, and store ``position``: all or nothing."""
        ...

    def sessions(self, since: datetime, until: datetime) -> Iterator[HourCount]:
        """The hourly counts with ``since <= hour < until``."""
        ...

    def unparsed(self) -> dict[str, int]:
        """Unparsed lines per source, ever."""
        ...

    def add_tlsrpt(self, report: TlsReport, received: datetime) -> bool:
        """Store a TLS report; False (and nothing stored) when its report-id is known."""
        ...

    def tlsrpt(self, since: datetime, until: datetime) -> TlsRptSummary:
        """Reports whose date range ends in ``[since, until)``."""
        ...

    def tlsrpt_failures(self, since: datetime) -> list[TlsRptFailure]:
        """Failed sessions of reports whose date range ends after ``since``."""
        ...


@dataclass(frozen=True)
class TlsRptFailure:
    organization: str
    mx_host: str  # receiving-mx-hostname, "" when the report does not say
    result_type: str
    sessions: int
    end: datetime  # end of the report's date range


@dataclass(frozen=True)
class TlsRptSummary:
    reports: int
    successful: int
    failures: dict[str, int]  # result-type → failed sessions
    by_policy: dict[str, dict[str, int]]  # policy-type → {"successful": n, "failed": n}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS monitor_position (source TEXT PRIMARY KEY, position TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS monitor_unparsed (source TEXT PRIMARY KEY, lines INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS monitor_sessions (
    hour TEXT NOT NULL, direction TEXT NOT NULL, domain TEXT NOT NULL, level TEXT NOT NULL,
    protocol TEXT NOT NULL, sessions INTEGER NOT NULL,
    PRIMARY KEY (hour, direction, domain, level, protocol));
CREATE TABLE IF NOT EXISTS monitor_tlsrpt (
    report_id TEXT PRIMARY KEY, organization TEXT NOT NULL, start TEXT NOT NULL, "end" TEXT NOT NULL,
    received TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS monitor_tlsrpt_result (
    report_id TEXT NOT NULL REFERENCES monitor_tlsrpt (report_id), policy_type TEXT NOT NULL,
    policy_domain TEXT NOT NULL, result_type TEXT NOT NULL, sessions INTEGER NOT NULL,
    mx_host TEXT NOT NULL DEFAULT '');
"""


class SqliteMonitorStorage:
    def __init__(self, path: Path) -> None:
        self.path = path
        # transactions are explicit; callers from several threads serialize (the HTTPS endpoint locks)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def load_position(self, source: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT position FROM monitor_position WHERE source = ?", (source,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def commit(self, source: str, position: dict[str, Any], counts: Mapping[SessionKey, int],
               unparsed: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO monitor_sessions VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(hour, direction, domain, level, protocol) DO UPDATE SET sessions = sessions + excluded.sessions",
                [(k.hour, k.direction, k.domain, k.level, k.protocol, n) for k, n in counts.items()],
            )
            db.execute("INSERT INTO monitor_unparsed VALUES (?, ?) ON CONFLICT (source) "
                       "DO UPDATE SET lines = lines + excluded.lines", (source, unparsed))
            db.execute("INSERT INTO monitor_position VALUES (?, ?) ON CONFLICT (source) "
                       "DO UPDATE SET position = excluded.position", (source, json.dumps(position)))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def sessions(self, since: datetime, until: datetime) -> Iterator[HourCount]:
        rows = self._db.execute(
            "SELECT hour, direction, domain, level, protocol, sessions FROM monitor_sessions "
            "WHERE hour >= ? AND hour < ? ORDER BY hour", (hour_of(since), hour_of(until)))
        for hour, direction, domain, level, protocol, n in rows:
            yield HourCount(SessionKey(hour, direction, domain, level, protocol), n)

    def unparsed(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT source, lines FROM monitor_unparsed").fetchall())


    def add_tlsrpt(self, report: TlsReport, received: datetime) -> bool:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM monitor_tlsrpt WHERE report_id = ?", (report.report_id,)).fetchone():
                db.execute("ROLLBACK")
                return False
            db.execute("INSERT INTO monitor_tlsrpt VALUES (?, ?, ?, ?, ?)",
                       (report.report_id, report.organization, _utc(report.start), _utc(report.end), _utc(received)))
            rows = []
            for p in report.policies:
                rows.append((report.report_id, p.policy_type, p.policy_domain, "success", p.successful, ""))
                rows += [(report.report_id, p.policy_type, p.policy_domain, f.result_type, f.sessions,
                          f.receiving_mx_hostname.lower().rstrip(".")) for f in p.failures]
                # failures the sender counted but did not detail
                undetailed = p.failed - sum(f.sessions for f in p.failures)
                if undetailed > 0:
                    rows.append((report.report_id, p.policy_type, p.policy_domain, "unspecified", undetailed, ""))
            db.executemany("INSERT INTO monitor_tlsrpt_result VALUES (?, ?, ?, ?, ?, ?)", rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return True

    def tlsrpt(self, since: datetime, until: datetime) -> TlsRptSummary:
        window = (_utc(since), _utc(until))
        (reports,) = self._db.execute(
            'SELECT count(*) FROM monitor_tlsrpt WHERE "end" >= ? AND "end" < ?', window).fetchone()
        successful, failures = 0, dict[str, int]()
        by_policy: dict[str, dict[str, int]] = {}
        for ptype, rtype, n in self._db.execute(
                "SELECT r.policy_type, r.result_type, sum(r.sessions) FROM monitor_tlsrpt_result r "
                'JOIN monitor_tlsrpt t USING (report_id) WHERE t."end" >= ? AND t."end" < ? '
                "GROUP BY r.policy_type, r.result_type", window):
            counts = by_policy.setdefault(ptype, {"successful": 0, "failed": 0})
            if rtype == "success":
                successful += n
                counts["successful"] += n
            else:
                failures[rtype] = failures.get(rtype, 0) + n
                counts["failed"] += n
        return TlsRptSummary(reports, successful, failures, by_policy)

    def tlsrpt_failures(self, since: datetime) -> list[TlsRptFailure]:
        rows = self._db.execute(
            'SELECT t.organization, r.mx_host, r.result_type, sum(r.sessions), t."end" FROM monitor_tlsrpt_result r '
            'JOIN monitor_tlsrpt t USING (report_id) WHERE t."end" > ? AND r.result_type != ? '
            'GROUP BY t.report_id, r.mx_host, r.result_type ORDER BY t."end"', (_utc(since), "success"))
        return [TlsRptFailure(org, mx, rt, n, datetime.fromisoformat(end)) for org, mx, rt, n, end in rows]


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def hour_of(when: datetime) -> str:
    """The aggregation bucket of a session time (UTC, truncated to the hour)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
