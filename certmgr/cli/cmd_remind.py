"""certmgr remind [--dry-run]: queue and send the reminders due now.

Exit 0, or 1 when some could not be sent (they stay queued and go out with the next run).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from certmgr.cli.common import print_json, print_table, runtime
from certmgr.notify.reminders import process


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what is due and queued; send nothing")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace) -> int:
    with runtime(args, read_only=args.dry_run) as rt:  # a dry run only reads: it works on a full disk too
        outcomes = process(rt, dry_run=args.dry_run)
    if args.json:
        print_json([asdict(o) for o in outcomes])
    elif outcomes:
        print_table("Reminders" + (" (dry run: nothing sent)" if args.dry_run else ""),
                    ["hostname", "key", "notifier", "kind", "result", "detail"],
                    [(o.hostname, o.key_alg, o.notifier, o.kind, o.action, o.detail[:100]) for o in outcomes])
    else:
        print("no reminders due")
    failed = sum(1 for o in outcomes if o.failed)
    if failed:
        print(f"certmgr remind: {failed} reminder(s) could not be sent; they stay queued and are sent "
              "with the next `certmgr remind` (or by the daemon)", file=sys.stderr)
        return 1
    return 0
