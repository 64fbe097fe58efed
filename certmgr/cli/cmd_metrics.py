"""certmgr metrics [-o FILE]: Prometheus text format, e.g. for node_exporter's textfile collector."""

from __future__ import annotations

import argparse
import sys

from certmgr.cli.common import runtime
from certmgr.service.jobs import metrics_registry
from certmgr.service.metrics import render_text, write_textfile


def run(args: argparse.Namespace) -> int:
    rt = runtime(args, read_only=True)
    try:
        registry = metrics_registry(rt)
    finally:
        rt.close()
    if args.output and args.output != "-":
        write_textfile(args.output, registry)  # atomic: the collector never reads half a file
    else:
        sys.stdout.buffer.write(render_text(registry))
    return 0
