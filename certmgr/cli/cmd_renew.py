"""certmgr renew [HOST...] [--force] [--dry-run]: exit 0 all ok, 1 some failed, 2 usage/config."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from certmgr.cli.common import is_tty, print_json, print_table, runtime
from certmgr.lifecycle.issue import Outcome
from certmgr.lifecycle.renew import Progress, Unchanged, renew_many
from certmgr.notify.reminders import process

if TYPE_CHECKING:
    from certmgr.partners.enforce import TargetOutcome


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Progress | None]:
    if not enabled or total < 2:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("renewing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
             TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("", total=total)

        def step(o: Outcome) -> None:
            bar.update(task, advance=1, description=f"{o.hostname} ({o.key_alg}): {o.action}")

        yield step


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST")
    parser.add_argument("--force", action="store_true", help="renew even if not due")
    parser.add_argument("--dry-run", action="store_true", help="say what would be renewed; change nothing")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace) -> int:
    with runtime(args) as rt:
        wanted = {rt.config.mta(h).hostname for h in args.hosts}  # an unknown name is a usage error
        total = sum(len(m.slot_keys) for m in rt.config.mtas if not wanted or m.hostname in wanted)
        unchanged = Unchanged()
        with _progress(total, is_tty() and not args.json) as progress:
            outcomes = renew_many(rt, args.hosts, force=args.force, dry_run=args.dry_run, progress=progress,
                                  unchanged=unchanged)
        # tell people at once about failures (and successes, where asked): never silent
        notices = [] if args.dry_run else process(rt, inventory=unchanged.take())
        # like deploy: a full run also brings the partners' TLS policy in line with the config
        # (only a deploy target can hold one: without any, the partner code is not even loaded)
        partners: list[TargetOutcome] = []
        if rt.config.deploys and not args.hosts and not args.dry_run:
            from certmgr.cli import partnering

            partners = partnering.apply(rt)
    partner_json: list[dict[str, object]] = []
    partner_rows: list[tuple[str, str, str, str]] = []
    if partners:
        from certmgr.cli import partnering

        partner_json = partnering.as_json(partners)
        partner_rows = [("partners", p.target, partnering.result(p), partnering.detail(p)) for p in partners]
    if args.json:
        print_json([vars(o).copy() for o in outcomes] + partner_json)  # asdict: 10x slower
    else:
        print_table("Renewal", ["hostname", "key", "result", "detail"],
                    [(o.hostname, o.key_alg, o.action, o.message) for o in outcomes] + partner_rows)
        for n in notices:
            if n.action in ("sent", "failed"):
                print(f"notice {n.kind} for {n.hostname} via {n.notifier}: {n.action} {n.detail}".rstrip(),
                      file=sys.stderr)
    return 1 if any(o.failed for o in outcomes) or not all(p.ok for p in partners) else 0

