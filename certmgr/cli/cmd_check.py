"""certmgr check [HOST[:PORT]...] [--json]: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import argparse

from certmgr.checking import check, exit_code
from certmgr.cli.common import print_json, print_table, runtime


def run(args: argparse.Namespace) -> int:
    rt = runtime(args, read_only=True)
    try:
        reports = check(rt, args.targets)
    finally:
        rt.close()
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
