"""Ingest TLS reports mailed into a maildir.

Each message in ``new/`` is read, its reports stored (a known ``report-id`` is
a duplicate, stored once), then the message is moved to ``cur/`` marked seen.
A message that is refused is moved too, with the reason in the result: a
corrupt report is never retried forever.  A crash between storing and moving
re-reads the message on the next run; the report-id makes that harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from certmgr.monitor.storage import MonitorStorage
from certmgr.monitor.tlsrpt import TlsReportError, reports_in_mail


@dataclass
class IngestResult:
    stored: list[str] = field(default_factory=list)  # report-ids
    duplicates: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (message file, reason)


def ingest_maildir(maildir: Path, storage: MonitorStorage, *, now: datetime) -> IngestResult:
    result = IngestResult()
    new, cur = maildir / "new", maildir / "cur"
    if not new.is_dir():
        raise TlsReportError(f"TLS report maildir {maildir}: no new/ folder (not a maildir)")
    cur.mkdir(exist_ok=True)
    for msg in sorted(new.iterdir()):
        if not msg.is_file():
            continue
        try:
            for report in reports_in_mail(msg.read_bytes()):
                if storage.add_tlsrpt(report, now):
                    result.stored.append(report.report_id)
                else:
                    result.duplicates.append(report.report_id)
        except TlsReportError as e:
            result.refused.append((msg.name, str(e)))
        msg.rename(cur / f"{msg.name.split(':')[0]}:2,S")
    return result
