"""certmgr deploy [HOST...]: (re)deploy the current certificates and verify them."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from certmgr.cli.common import print_json, print_table, runtime
from certmgr.deploy.orchestrate import deploy_mtas


def run(args: argparse.Namespace) -> int:
    rt = runtime(args)
    try:
        mtas = [rt.config.mta(h) for h in args.hosts] if args.hosts else list(rt.config.mtas)
        reports = deploy_mtas(rt, mtas)
    finally:
        rt.close()
    if args.json:
        print_json([asdict(r) for r in reports])
    else:
        print_table("Deployment", ["hostname", "target", "result", "detail"],
                    [(r.hostname, r.target, "verified" if r.ok else ("rolled back" if r.rolled_back else "failed"),
                      r.message) for r in reports])
    return 0 if all(r.ok for r in reports) else 1
