"""certmgr csr HOST / certmgr import HOST FILE; with --batch DIR, every MTA in one process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certmgr.cli.common import runtime
from certmgr.errors import ImportRejected, UsageError
from certmgr.lifecycle.manual import export_csr, export_csrs, import_batch, import_certificate


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("host", metavar="HOST", nargs="?")
    if command == "csr":
        parser.add_argument("--key", choices=["rsa", "ecdsa"], help="for dual MTAs: which key's CSR (default: all)")
        parser.add_argument("--force", action="store_true", help="also for an MTA whose issuer is not manual")
        parser.add_argument("--batch", metavar="DIR", type=Path,
                            help="instead of HOST: write the CSR of every MTA with a manual issuer into DIR "
                                 "as HOST.csr (HOST.ALG.csr for two keys)")
    else:
        parser.add_argument("file", metavar="FILE", nargs="?", help="PEM certificate followed by its chain")
        parser.add_argument("--force", action="store_true",
                            help="also for an MTA whose issuer is not manual, and over a longer-lived certificate")
        parser.add_argument("--batch", metavar="DIR", type=Path,
                            help="instead of HOST FILE: import every DIR/HOST.pem (or HOST.ALG.pem) in one run")


def run(args: argparse.Namespace) -> int:
    batch: Path | None = args.batch
    given = [a for a in (args.host, getattr(args, "file", None)) if a]
    if batch is not None and given:
        raise UsageError(f"`certmgr {args.command} --batch DIR` takes no HOST or FILE")
    if batch is None and len(given) != (1 if args.command == "csr" else 2):
        raise UsageError("certmgr csr HOST (or --batch DIR)" if args.command == "csr"
                         else "certmgr import HOST FILE (or --batch DIR)")
    with runtime(args) as rt:
        if args.command == "csr" and batch is not None:
            if args.key:
                raise UsageError("--key names one key of one MTA: not with --batch")
            written = export_csrs(rt, batch, force=args.force)
            print(f"wrote {len(written)} CSR(s) into {batch}")
        elif args.command == "csr":
            for _alg, pem in export_csr(rt, args.host, args.key, force=args.force):
                sys.stdout.write(pem.decode())
        elif batch is not None:
            done, refused = import_batch(rt, batch, force=args.force)
            for line in done:
                print(line)
            if refused:
                raise ImportRejected(f"{len(refused)} of {len(done) + len(refused)} file(s) refused "
                                     "(the others are imported):\n" + "\n".join(refused))
            print(f"imported {len(done)} certificate(s) from {batch}")
        else:
            print(import_certificate(rt, args.host, Path(args.file), force=args.force))
    return 0
