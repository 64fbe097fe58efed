"""certmgr check [HOST[:PORT]...] [--json]: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import argparse
import sys

from certmgr.cli.common import print_json, print_table, runtime
from certmgr.dns.status import add_rollover, snapshot
from certmgr.errors import CertmgrError
from certmgr.probe.check import EXIT, check, exit_code
from certmgr.store import utcnow


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("targets", nargs="*", metavar="HOST[:PORT]")
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def run(args: argparse.Namespace) -> int:
    try:
        with runtime(args, read_only=True) as rt:
            reports = check(rt, args.targets)
            recorded = snapshot(rt) if any(r.get("hostname") for r in reports) else None
            for report in reports:
                if report.get("hostname") and recorded is not None:
                    add_rollover(report, rt.config, utcnow(), recorded)
    except CertmgrError as e:
        # a check that could not be made is UNKNOWN to a monitoring system, never WARNING/CRITICAL
        print(f"certmgr check: UNKNOWN: {e}", file=sys.stderr)
        return EXIT["unknown"]
    if args.json:
        print_json(reports)
    else:
        rows = []
        for r in reports:
            cert = r.get("certificate") or {}
            rows.append((r["target"] + (f" ({r['key_alg']})" if r.get("key_alg") else ""), r["status"].upper(),
                         r.get("banner_host") or "-", "yes" if r["starttls"] else "no", r.get("tls_version") or "-",
                         cert.get("days_left", "-"), "yes" if r.get("matches_managed") else "no",
                         "; ".join(r["problems"]) or "-"))
        print_table("STARTTLS check", ["target", "status", "banner", "starttls", "tls", "days", "managed",
                                        "problems"], rows)
    return exit_code(reports)
