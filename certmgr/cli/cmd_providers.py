"""certmgr providers: what is installed, by entry-point group."""

from __future__ import annotations

import argparse

from certmgr.cli.common import print_table
from certmgr.registry import list_providers


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """No arguments beyond the global ones."""


def run(args: argparse.Namespace) -> int:
    rows = [(p.kind, p.name, p.target, p.description) for p in list_providers()]
    print_table("Registered providers", ["kind", "name", "module", "description"], rows)
    return 0
