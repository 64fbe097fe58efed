"""certmgr csr HOST / certmgr import HOST FILE."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certmgr.cli.common import runtime
from certmgr.lifecycle.manual import export_csr, import_certificate


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("host", metavar="HOST")
    if command == "csr":
        parser.add_argument("--key", choices=["rsa", "ecdsa"], help="for dual MTAs: which key's CSR (default: all)")
        parser.add_argument("--force", action="store_true", help="also for an MTA whose issuer is not manual")
    else:
        parser.add_argument("file", metavar="FILE", help="PEM certificate followed by its chain")
        parser.add_argument("--force", action="store_true",
                            help="also for an MTA whose issuer is not manual, and over a longer-lived certificate")


def run(args: argparse.Namespace) -> int:
    with runtime(args) as rt:
        if args.command == "csr":
            for _alg, pem in export_csr(rt, args.host, args.key, force=args.force):
                sys.stdout.write(pem.decode())
        else:
            print(import_certificate(rt, args.host, Path(args.file), force=args.force))
    return 0
