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


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--since", default="7d", help="the period: 7d, 24h, 90m, 2w (default 7d)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--html", metavar="FILE", help="write the report with its chart as an HTML page")


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since)  # a usage error before anything is read
    cfg = config(args)
    mon = monitor_config(cfg)  # before the state dir or the database is touched
    with runtime(args, cfg=cfg) as rt:
        from certmgr.notify.tls_alerts import partner_domains

        rep, summary = report(mon, MonitorStore(rt.store), since=since, now=datetime.now(UTC),
                              enforced_partners=partner_domains(rt))
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
