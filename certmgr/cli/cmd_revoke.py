"""certmgr revoke HOST [--reason R]."""

from __future__ import annotations

import argparse

from certmgr.cli.common import runtime
from certmgr.lifecycle.revoke import revoke_host


def run(args: argparse.Namespace) -> int:
    rt = runtime(args)
    try:
        lines, ok = revoke_host(rt, args.host, args.reason)
    finally:
        rt.close()
    for line in lines:
        print(line)
    return 0 if ok else 1
