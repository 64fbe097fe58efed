"""certmgr run: the daemon (exit 0 on SIGTERM, 2 when another daemon holds the state dir)."""

from __future__ import annotations

import argparse
import logging

from certmgr.config.load import config_path


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """No arguments beyond the global ones."""


def run(args: argparse.Namespace) -> int:
    from certmgr.service.daemon import run_daemon

    # the daemon logs one line per action to stderr (journald), whatever -v says
    logging.getLogger("certmgr").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return run_daemon(config_path(args.config))
