"""certmgr metrics [-o FILE]: Prometheus text format, e.g. for node_exporter's textfile collector."""

from __future__ import annotations

import argparse
import sys

from certmgr.cli.common import runtime
from certmgr.service.metrics import metrics_text, write_textfile


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write FILE atomically (default: stdout)")


def run(args: argparse.Namespace) -> int:
    with runtime(args, read_only=True) as rt:
        text = metrics_text(rt)
    if args.output and args.output != "-":
        write_textfile(args.output, text)  # atomic: the collector never reads half a file
    else:
        sys.stdout.buffer.write(text)
    return 0
