"""certmgr calendar [-o FILE]: an iCalendar feed (expiry and renewal events) of every certificate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certmgr.cli.common import runtime
from certmgr.interfaces import renews_automatically
from certmgr.notify.calendar import feed_ics
from certmgr.notify.outbox import facts_for
from certmgr.store import utcnow
from certmgr.store.files import atomic_write


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write FILE atomically (default: stdout)")


def run(args: argparse.Namespace) -> int:
    now = utcnow()
    with runtime(args, read_only=True) as rt:
        pairs = rt.sync_inventory()
        versions = rt.store.current_versions()
        facts = [
            facts_for(rt, slot, versions.get(slot.id) if slot.id is not None else None,
                      renews_automatically(rt.providers.issuer(mta.issuer)), now)
            for mta, slot in pairs
        ]
    data = feed_ics(facts, now)
    if args.output and args.output != "-":
        # a feed holds no secrets: readable by the web server that publishes it
        atomic_write(Path(args.output), data, 0o644)
    else:
        sys.stdout.buffer.write(data)
    return 0
