"""Where the collector keeps its read positions and hourly aggregates.

A contract, not a class: ``MonitorStorage``.  The one rule that makes the
collector exactly-once: ``commit`` adds the counts of a batch and moves the
read position *in one transaction* — after a crash either both happened or
neither did.

The implementation is ``certmgr.store.monitor.MonitorStore``, on the core store
(the only package that opens database sessions); the tables are small: one row
per hour, direction, domain, level and protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

# the value types live beside their tables, so the store never imports the monitor
from certmgr.store.monitor_types import (
    HourCount,
    PeerCount,
    PeerKey,
    SessionKey,
    TlsReport,
    TlsRptFailure,
    TlsRptSummary,
    hour_of,
)

__all__ = ["HourCount", "MonitorReads", "MonitorStorage", "PeerCount", "PeerKey", "SessionKey", "TlsRptFailure",
           "TlsRptSummary", "hour_of"]


class MonitorReads(Protocol):
    """What reports, alerts and metrics read: ``MonitorStore`` and the ORM-free read path of the
    commands that only display (``certmgr.store.practice_rows.MonitorRows``)."""

    def load_position(self, source: str) -> dict[str, Any] | None:
        """The position ``commit`` stored last for ``source``, or None."""
        ...

    def plain_peers(self, since: datetime, until: datetime) -> Iterator[PeerCount]:
        """The peers of sessions without TLS in the hours that overlap ``[since, until)``."""
        ...

    def sessions(self, since: datetime, until: datetime) -> Iterator[HourCount]:
        """The hourly counts of the hours that overlap ``[since, until)`` (the hour under way included)."""
        ...

    def unparsed(self) -> dict[str, int]:
        """Unparsed lines per source, ever."""
        ...

    def tlsrpt(self, since: datetime, until: datetime) -> TlsRptSummary:
        """Reports whose date range ends in ``[since, until)``."""
        ...

    def tlsrpt_failures(self, since: datetime) -> list[TlsRptFailure]:
        """Failed sessions of reports whose date range ends after ``since``."""
        ...


class MonitorStorage(MonitorReads, Protocol):
    def commit(self, source: str, position: dict[str, Any], counts: Mapping[SessionKey, int],
               unparsed: int, plain_peers: Mapping[PeerKey, int] | None = None) -> None:
        """Add ``counts``, ``unparsed`` and the peers of sessions without TLS, and store
        ``position``: all or nothing."""
        ...

    def add_tlsrpt(self, report: TlsReport, received: datetime) -> bool:
        """Store a TLS report; False (and nothing stored) when its report-id is known."""
        ...
