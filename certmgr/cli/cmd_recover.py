"""certmgr recover [--json]: rebuild the inventory and history from the state directory."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from certmgr.cli.common import config, print_json, print_table
from certmgr.lifecycle.recover import recover
from certmgr.runtime import Runtime
from certmgr.store import utcnow


def run(args: argparse.Namespace) -> int:
    rt = Runtime(config(args))
    try:
        done = recover(rt, utcnow())
    finally:
        rt.close()
    if args.json:
        print_json([asdict(r) for r in done])
    else:
        print_table("Recovered from the state directory", ["hostname", "key", "versions added", "current", "note"],
                    [(r.hostname, r.key_alg, r.versions_added, r.current_serial or "-", r.note) for r in done])
    return 0
