"""The read path of the practices' tables (``[monitor]``, ``[[partner]]``) for the commands that
only display (`status`, `metrics`): the reads of :class:`certmgr.store.monitor.MonitorStore` and
:meth:`certmgr.store.partners.PartnerStore.states` on the query function of
:class:`certmgr.store.rows.Rows`, so that an SQLite database at the current schema is read
without importing SQLAlchemy.

They return the store's own value types (:mod:`certmgr.store.monitor_types`,
:class:`certmgr.store.partner_types.PartnerRecord`), times aware in UTC; the table names below are
the models' ``__tablename__`` (a unit test compares every read with the store's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from certmgr.store.monitor_types import (
    HourCount,
    PeerCount,
    PeerKey,
    SessionKey,
    TlsRptFailure,
    TlsRptSummary,
    hour_range,
    tlsrpt_summary,
)
from certmgr.store.partner_types import PartnerRecord, partner_record
from certmgr.store.rows import Rows, utc

#: the tables read here (the models name their tables with these)
MONITOR_POSITIONS = "monitor_position"
MONITOR_SESSIONS = "monitor_sessions"
PLAIN_PEERS = "monitor_plain_peer"
TLSRPT_REPORTS = "monitor_tlsrpt"
TLSRPT_RESULTS = "monitor_tlsrpt_result"
PARTNER_STATES = "partner_state"

#: what the read path selects of a TLS report's results, joined to the report (``t``)
_RESULTS_OF_REPORTS = f"FROM {TLSRPT_RESULTS} r JOIN {TLSRPT_REPORTS} t ON t.report_id = r.report_id"


def _text(value: str) -> str:
    """``value`` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class MonitorRows:
    """The reads of the mail TLS monitor's tables (a ``MonitorReads``), on ``rows``."""

    def __init__(self, rows: Rows) -> None:
        self._rows = rows
        self._sqlite = rows.url.startswith("sqlite")

    def _time(self, when: datetime) -> str:
        """``when`` as a literal compared as the column's values: SQLite holds UTC text without an
        offset (SQLAlchemy's format, compared as text), PostgreSQL a ``timestamptz``."""
        text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return _text(text if self._sqlite else text + "+00:00")

    def _hours(self, table: str, columns: str, since: datetime, until: datetime) -> list[Any]:
        first, last = hour_range(since, until)
        return list(self._rows.query(f"SELECT {columns}, sessions FROM {table} WHERE hour >= {_text(first)} "
                                     f"AND hour <= {_text(last)} ORDER BY {columns}"))

    def sessions(self, since: datetime, until: datetime) -> Iterator[HourCount]:
        for *key, n in self._hours(MONITOR_SESSIONS, "hour, direction, domain, level, protocol", since, until):
            yield HourCount(SessionKey(*key), int(n))

    def plain_peers(self, since: datetime, until: datetime) -> Iterator[PeerCount]:
        for *key, n in self._hours(PLAIN_PEERS, "hour, direction, domain, host, address", since, until):
            yield PeerCount(PeerKey(*key), int(n))

    def unparsed(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self._rows.query(f"SELECT source, unparsed FROM {MONITOR_POSITIONS}")}

    def load_position(self, source: str) -> dict[str, Any] | None:
        found = self._rows.query(f"SELECT position FROM {MONITOR_POSITIONS} WHERE source = {_text(source)}")
        return dict(json.loads(found[0][0])) if found else None

    def _ended(self, since: datetime, until: datetime, report: str = "") -> str:
        """The reports (alias ``report``) whose date range ends in ``[since, until)``."""
        end = f'{report}."end"' if report else '"end"'
        return f"{end} >= {self._time(since)} AND {end} < {self._time(until)}"

    def tlsrpt(self, since: datetime, until: datetime) -> TlsRptSummary:
        ((reports,),) = self._rows.query(f"SELECT count(*) FROM {TLSRPT_REPORTS} WHERE {self._ended(since, until)}")
        sums = self._rows.query(f"SELECT r.policy_type, r.result_type, sum(r.sessions) {_RESULTS_OF_REPORTS} "
                                f"WHERE {self._ended(since, until, 't')} GROUP BY r.policy_type, r.result_type")
        return tlsrpt_summary(int(reports), ((str(p), str(r), int(n)) for p, r, n in sums))

    def tlsrpt_failures(self, since: datetime) -> list[TlsRptFailure]:
        rows = self._rows.query(
            f'SELECT t.organization, r.mx_host, r.result_type, sum(r.sessions), t."end" {_RESULTS_OF_REPORTS} '
            f"""WHERE t."end" > {self._time(since)} AND r.result_type <> 'success' """
            'GROUP BY t.report_id, r.mx_host, r.result_type, t.organization, t."end" '
            'ORDER BY t."end", t.report_id, r.mx_host, r.result_type')
        return [TlsRptFailure(org, mx, rt, int(n), utc(end)) for org, mx, rt, n, end in rows]


def partner_states(rows: Rows) -> dict[str, PartnerRecord]:
    """domain → its last check (partners never checked are absent), as ``PartnerStore.states``."""
    found = rows.query(f"SELECT domain, require, status, meets, enforced, problems, addresses, checked_at, "
                       f"alerted_at FROM {PARTNER_STATES}")
    return {str(d): partner_record(d, req, st, meets, enf, problems, addresses, utc(checked),
                                   None if alerted is None else utc(alerted))
            for d, req, st, meets, enf, problems, addresses, checked, alerted in found}
