"""certmgr report [--since 7d] [--json | --html FILE]: how much mail used TLS, collected first."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from certmgr.cli.common import config, print_json, runtime
from certmgr.cli.monitoring import monitor_config
from certmgr.monitor.commands import parse_since, report
from certmgr.store.monitor import MonitorStore


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since)  # a usage error before anything is read
    cfg = config(args)
    mon = monitor_config(cfg)  # before the state dir or the database is touched
    rt = runtime(args, cfg=cfg)
    try:
        storage = MonitorStore(rt.store)
        rep, summary = report(mon, storage, since=since, now=datetime.now(UTC))
    finally:
        rt.close()
    for err in summary.errors:
        print(f"certmgr report: {err}", file=sys.stderr)
    if args.json:
        print_json(rep)
    elif args.html:
        from certmgr.monitor.mail import report_page
        from certmgr.store.files import atomic_write

        atomic_write(Path(args.html), report_page(rep).encode(), mode=0o644)
    else:
        from certmgr.monitor.mail import report_text

        sys.stdout.write(report_text(rep))
    return summary.exit_code
