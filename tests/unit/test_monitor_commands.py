"""collect reads every configured source, a broken one does not stop the others;
report collects first; --since is parsed strictly."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.collect_bench import generate
from certmgr.errors import UsageError
from certmgr.monitor.commands import collect, parse_since, report
from certmgr.monitor.config import parse_monitor
from certmgr.store.monitor import MonitorStore
from tests.tlsrpt_reports import as_json
from tests.tlsrpt_reports import report as tls_report


def test_since() -> None:
    assert parse_since("7d") == timedelta(days=7) and parse_since("90m") == timedelta(minutes=90)
    for bad in ("7", "d", "0d", "1y", "-1d"):
        with pytest.raises(UsageError, match="--since"):
            parse_since(bad)


def test_collect_every_source_and_report(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    expected = generate(log, 2000)  # "Nov 29 ..." without a year: the file's year counts
    now = datetime(2026, 11, 30, tzinfo=UTC)
    os.utime(log, (now.timestamp(), now.timestamp()))
    maildir = tmp_path / "tlsrpt"
    (maildir / "new").mkdir(parents=True)
    (maildir / "new" / "1.mail").write_bytes(
        b"Content-Type: application/tlsrpt+json\nSubject: Report\n\n" + as_json(tls_report("c1")))
    cfg = parse_monitor({"logs": [{"type": "postfix", "path": str(tmp_path / "missing.log")},
                                  {"type": "postfix", "path": str(log)}],
                         "tlsrpt": {"maildir": str(maildir)}})
    store = MonitorStore.at(tmp_path / "db")
    summary = collect(cfg, store, now=now)
    assert summary.exit_code == 1 and len(summary.errors) == 1 and "missing.log: cannot read" in summary.errors[0]
    assert summary.logs[0].sessions == sum(expected.values())
    assert summary.tlsrpt is not None and summary.tlsrpt.stored == ["c1"]

    rep, again = report(cfg, store, since=parse_since("7d"), now=now)
    assert again.logs[0].sessions == 0  # collected first: nothing new
    rep = json.loads(json.dumps(rep))
    assert rep["inbound"]["sessions"] + rep["outbound"]["sessions"] == sum(expected.values())
    assert rep["outbound"]["by_level"] == {lvl: n for (d, lvl), n in expected.items() if d == "outbound"}
    assert rep["tlsrpt"]["reports"] == 1
