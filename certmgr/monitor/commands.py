"""What ``certmgr collect`` and ``certmgr report`` do, as functions of a
``MonitorConfig`` and a storage (the CLI and the daemon only call these).

``collect`` reads every configured log and the TLS-RPT maildir; a source that
fails (a log that is missing, a maildir that is not one) is reported with the
reason and the others are still read: one broken log must not stop the count
of the rest.  ``report`` collects first, then builds the report of
``[now - since, now)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from certmgr.errors import CertmgrError, UsageError
from certmgr.monitor.collector import CollectResult, collect_log
from certmgr.monitor.config import MonitorConfig
from certmgr.monitor.journal import JournalError, collect_journal
from certmgr.monitor.report import build_report
from certmgr.monitor.storage import MonitorStorage
from certmgr.monitor.tlsrpt_ingest import IngestResult, ingest_maildir

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: the longest --since period
MAX_SINCE_DAYS = 3650


def parse_since(text: str) -> timedelta:
    """``7d``, ``24h``, ``90m``, ``2w`` → a period; anything else is a usage error."""
    m = re.fullmatch(r"(\d+)([mhdw])", text.strip())
    if m is None or int(m[1]) == 0:
        raise UsageError(f"--since {text!r}: expected a count and a unit, like 7d, 24h, 90m or 2w")
    seconds = int(m[1]) * _UNITS[m[2]]
    if seconds > MAX_SINCE_DAYS * 86400:  # further back than the clock can count from now
        raise UsageError(f"--since {text!r}: at most {MAX_SINCE_DAYS}d (ten years)")
    return timedelta(seconds=seconds)


@dataclass
class CollectSummary:
    logs: list[CollectResult] = field(default_factory=list)
    tlsrpt: IngestResult | None = None
    errors: list[str] = field(default_factory=list)  # "<source>: <reason>"

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0


def collect(cfg: MonitorConfig, storage: MonitorStorage, *, now: datetime) -> CollectSummary:
    summary = CollectSummary()
    for src in cfg.logs:
        try:
            if src.journal is not None:
                summary.logs.append(collect_journal(src.journal, storage, log_type=src.type, directory=src.directory))
            else:
                assert src.path is not None
                summary.logs.append(collect_log(src.path, storage, log_type=src.type))
        except OSError as e:  # per-source boundary: the other logs are still counted
            summary.errors.append(f"{src.name}: cannot read the {src.type} log: {e.strerror or e}")
        except JournalError as e:
            summary.errors.append(f"{src.name}: {e}")
    if cfg.tlsrpt_maildir is not None:
        try:
            summary.tlsrpt = ingest_maildir(cfg.tlsrpt_maildir, storage, now=now)
        except (OSError, CertmgrError) as e:
            summary.errors.append(f"{cfg.tlsrpt_maildir}: {e}")
    return summary


def report(cfg: MonitorConfig, storage: MonitorStorage, *, since: timedelta, now: datetime,
           enforced_partners: tuple[str, ...] = ()) -> tuple[dict[str, Any], CollectSummary]:
    summary = collect(cfg, storage, now=now)
    rep = build_report(storage, now - since, now, thresholds=cfg.thresholds, enforced_partners=enforced_partners)
    return rep, summary
