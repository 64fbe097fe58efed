"""certmgr collect: read what is new in the mail logs and the TLS-RPT maildir of ``[monitor]``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from certmgr.cli.common import config, print_json, print_table, runtime
from certmgr.cli.monitoring import monitor_config
from certmgr.monitor.commands import CollectSummary, collect
from certmgr.store.monitor import MonitorStore


def summary_json(s: CollectSummary) -> dict[str, object]:
    return {
        "logs": [{"source": r.source, "lines": r.lines, "sessions": r.sessions, "unparsed": r.unparsed,
                  "files": r.files, "position_lost": r.position_lost} for r in s.logs],
        "tlsrpt": None if s.tlsrpt is None else {
            "stored": s.tlsrpt.stored, "duplicates": s.tlsrpt.duplicates,
            "refused": [{"message": m, "reason": r} for m, r in s.tlsrpt.refused]},
        "errors": s.errors,
    }


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--json", action="store_true", help="print what was read as JSON")


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    mon = monitor_config(cfg)  # before the state dir or the database is touched
    with runtime(args, cfg=cfg) as rt:
        summary = collect(mon, MonitorStore(rt.store), now=datetime.now(UTC))
    if args.json:
        print_json(summary_json(summary))
    else:
        rows: list[tuple[object, ...]] = [(r.source, r.lines, r.sessions, r.unparsed, " ".join(r.files))
                                          for r in summary.logs]
        if summary.tlsrpt is not None:
            t = summary.tlsrpt
            rows.append(("TLS reports", "", len(t.stored), len(t.refused), f"{len(t.duplicates)} duplicates"))
        print_table("Collected", ["source", "lines", "sessions", "unparsed", "files"], rows)
    for err in summary.errors:
        print(f"certmgr collect: {err}", file=sys.stderr)
    return summary.exit_code
