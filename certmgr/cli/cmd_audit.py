"""certmgr audit [HOST…] [--source ADDR]… [--json]: is opportunistic TLS on, for everyone?"""

from __future__ import annotations

import argparse

from certmgr.cli.common import print_json, print_table, runtime


def run(args: argparse.Namespace) -> int:
    from certmgr.partners.auditing import audit_mta
    from certmgr.probe.assess import EXIT_CODES

    rt = runtime(args, read_only=True)
    try:
        mtas = [rt.config.mta(h) for h in args.hosts] if args.hosts else list(rt.config.mtas)
        reports = [audit_mta(rt.config, m, rt.providers.deployer, args.source or []) for m in mtas]
    finally:
        rt.close()
    if args.json:
        print_json(reports)
    else:
        print_table("TLS configuration audit", ["hostname", "status", "problems"],
                    [(r["hostname"], r["status"].upper(), "; ".join(r["problems"]) or "-") for r in reports])
    return max((EXIT_CODES[r["status"]] for r in reports), default=0)
