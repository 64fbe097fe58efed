"""certmgr status [--json]: one row per managed certificate, then the open mail TLS alerts
of ``[monitor]`` (exit 1, the warning of ``check``, while there are any).

On a terminal too narrow for the whole table (an 80-column one, typically),
each certificate gets a line of its own instead: hostnames, states and errors
are never cut short.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from certmgr.cli.common import is_tty, print_json, print_table, runtime
from certmgr.lifecycle.inventory import status_rows
from certmgr.store import utcnow

COLUMNS = ["hostname", "key", "issuer", "serial", "expires", "days", "state", "renew at", "deployed", "last error"]


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def run(args: argparse.Namespace) -> int:
    from certmgr.dns.status import snapshot, text_tables
    from certmgr.lifecycle.lost import lost_inventory
    from certmgr.notify import tls_alerts

    with runtime(args, read_only=True) as rt:
        rows = status_rows(rt, utcnow())
        lost = lost_inventory(rt)
        dns_tables = [] if args.json else text_tables(rt.config, rows, snapshot(rt))
        alerts = tls_alerts.status_rows(rt, utcnow())
    if lost:
        print(f"certmgr status: warning: {lost}", file=sys.stderr)
    code = 1 if alerts else 0  # as `check` says WARNING
    if args.json:
        print_json(rows + alerts)
        return code
    table = [
        (r["hostname"], r["key_spec"], r["issuer"], r["serial"] or "-",
         (r["not_after"] or "-")[:10], str(r["days_left"]) if r["days_left"] is not None else "-", r["state"],
         (r["renew_at"] or "-")[:16], "yes" if r["deployed"] else "no", (r["last_error"] or "")[:80])
        for r in rows
    ]
    narrow = False
    if is_tty():
        from rich.console import Console

        console = Console()
        narrow = _table_width(COLUMNS, table) > console.width
        if narrow:
            _print_narrow(console, rows)
    if not narrow:
        print_table("Managed certificates", COLUMNS, table)
    for title, columns, cells in dns_tables:  # DANE per MTA, MTA-STS per domain
        print_table(title, columns, cells)
    if alerts:
        print_table("Mail TLS alerts", list(tls_alerts.STATUS_COLUMNS),
                    [tuple(a[c] for c in tls_alerts.STATUS_COLUMNS) for a in alerts])
    return code


def _table_width(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """The width rich's default table needs to show every cell whole (1 space of padding each
    side and a border between and around the columns)."""
    from rich.cells import cell_len

    widths = [max([cell_len(c), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    return sum(widths) + 3 * len(widths) + 1


def _print_narrow(console: Any, rows: list[dict[str, Any]]) -> None:
    """One block per certificate, wrapped by the console: nothing is truncated."""
    from rich.markup import escape

    console.print("[bold]Managed certificates[/bold]")
    for r in rows:
        expires = (f"expires {r['not_after'][:10]} ({r['days_left']} days)" if r["not_after"]
                   else "no certificate yet")
        console.print(f"[bold]{escape(r['hostname'])}[/bold] {escape(r['key_spec'])}: [bold]{escape(r['state'])}"
                      f"[/bold], {'deployed' if r['deployed'] else 'not deployed'}, {expires}", overflow="fold")
        details = [f"issuer {r['issuer']}"]
        if r["serial"]:
            details.append(f"serial {r['serial']}")
        if r["renew_at"]:
            details.append(f"renews {r['renew_at'][:16].replace('T', ' ')}")
        console.print("  " + escape(", ".join(details)), overflow="fold")
        if r["last_error"]:
            console.print("  last error: " + escape(r["last_error"]), overflow="fold")
