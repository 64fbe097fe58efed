"""certmgr csr HOST / certmgr import HOST FILE."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certmgr.cli.common import runtime
from certmgr.lifecycle.manual import export_csr, import_certificate


def run(args: argparse.Namespace) -> int:
    rt = runtime(args)
    try:
        if args.command == "csr":
            for _alg, pem in export_csr(rt, args.host, args.key, force=args.force):
                sys.stdout.write(pem.decode())
        else:
            print(import_certificate(rt, args.host, Path(args.file), force=args.force))
    finally:
        rt.close()
    return 0
