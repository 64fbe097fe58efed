"""certmgr deploy [HOST...]: (re)deploy the current certificates and verify them."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from certmgr.cli import partnering
from certmgr.cli.common import print_json, print_table, runtime
from certmgr.deploy.orchestrate import deploy_mtas


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace) -> int:
    with runtime(args) as rt:
        mtas = [rt.config.mta(h) for h in args.hosts] if args.hosts else list(rt.config.mtas)
        reports = deploy_mtas(rt, mtas)
        # naming hosts limits the run to them; a full deploy also applies the partners' TLS policy
        partners = [] if args.hosts else partnering.apply(rt)
    if args.json:
        print_json([asdict(r) for r in reports] + partnering.as_json(partners))
    else:
        rows = [(r.hostname, r.target, "verified" if r.ok else ("waiting" if r.waiting else
                                             "rolled back" if r.rolled_back else "failed"),
                 r.message) for r in reports]
        rows += [("partners", p.target, partnering.result(p), partnering.detail(p)) for p in partners]
        print_table("Deployment", ["hostname", "target", "result", "detail"], rows)
    return 0 if all(r.ok or r.waiting for r in reports) and all(p.ok for p in partners) else 1

