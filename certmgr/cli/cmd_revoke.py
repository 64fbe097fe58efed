"""certmgr revoke HOST [--reason R]."""

from __future__ import annotations

import argparse

from certmgr.cli.common import runtime
from certmgr.lifecycle.revoke import revoke_host


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("--reason", default="unspecified",
                        choices=["unspecified", "keyCompromise", "affiliationChanged", "superseded",
                                 "cessationOfOperation"])


def run(args: argparse.Namespace) -> int:
    with runtime(args) as rt:
        lines, ok = revoke_host(rt, args.host, args.reason)
    for line in lines:
        print(line)
    return 0 if ok else 1
