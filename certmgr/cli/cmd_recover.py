"""certmgr recover [--json]: rebuild the inventory and history from the state directory."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from certmgr.cli.common import config, print_json, print_table
from certmgr.lifecycle.recover import recover
from certmgr.runtime import Runtime
from certmgr.store import utcnow


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--json", action="store_true", help="print what was recovered as JSON")


def run(args: argparse.Namespace) -> int:
    with Runtime(config(args)) as rt:
        done = recover(rt, utcnow())
    if args.json:
        print_json([asdict(r) for r in done])
    else:
        print_table("Recovered from the state directory", ["hostname", "key", "versions added", "current", "note"],
                    [(r.hostname, r.key_alg, r.versions_added, r.current_serial or "-", r.note) for r in done])
    return 0
