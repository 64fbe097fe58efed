"""certmgr status [--json]: one row per managed certificate."""

from __future__ import annotations

import argparse
import sys

from certmgr.cli.common import print_json, print_table, runtime
from certmgr.inventory import status_rows
from certmgr.store import utcnow


def run(args: argparse.Namespace) -> int:
    from certmgr.recovery import lost_inventory

    rt = runtime(args, read_only=True)
    try:
        rows = status_rows(rt, utcnow())
        lost = lost_inventory(rt)
    finally:
        rt.close()
    if lost:
        print(f"certmgr status: warning: {lost}", file=sys.stderr)
    if args.json:
        print_json(rows)
        return 0
    table = [
        (r["hostname"], r["key_spec"], r["issuer"], r["serial"] or "-",
         (r["not_after"] or "-")[:10], r["days_left"] if r["days_left"] is not None else "-", r["state"],
         (r["renew_at"] or "-")[:16], "yes" if r["deployed"] else "no", (r["last_error"] or "")[:80])
        for r in rows
    ]
    print_table("Managed certificates",
                ["hostname", "key", "issuer", "serial", "expires", "days", "state", "renew at", "deployed",
                 "last error"], table)
    return 0
