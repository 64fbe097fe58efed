"""Helpers every command shares: loading the config, output as table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from certmgr.config.load import config_path, load_config
from certmgr.config.model import Config

if TYPE_CHECKING:
    from certmgr.runtime import Runtime


def config(args: argparse.Namespace) -> Config:
    return load_config(config_path(args.config))


def runtime(args: argparse.Namespace, *, read_only: bool = False, cfg: Config | None = None) -> Runtime:
    """The runtime of a command, to use as ``with runtime(args) as rt:`` (of ``cfg`` when the
    command loaded it already); ``read_only`` for commands that must work on a full disk."""
    from certmgr.runtime import Runtime

    rt = Runtime(cfg or config(args), read_only=read_only)
    if not read_only:
        from certmgr.lifecycle.lost import refuse_if_lost

        try:
            refuse_if_lost(rt)  # a deleted database must not make everything be ordered again
        except BaseException:
            rt.close()
            raise
    return rt


def is_tty() -> bool:
    return sys.stdout.isatty()


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout; a list (the rows of a command) one element per line, still
    one JSON array: `grep` and `jq` read it alike, and indenting each of 10,000 rows cost more
    than the rows themselves."""
    # one write: json.dump writes each token on its own (a million writes for 10,000 rows)
    if isinstance(data, list) and data:
        dumps = json.JSONEncoder(default=str).encode
        sys.stdout.write("[\n" + ",\n".join(map(dumps, data)) + "\n]\n")
    else:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a terminal, tab-separated plain text when piped."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for c in columns:
            table.add_column(c)
        for row in cells:
            table.add_row(*row)
        Console().print(table)
    else:
        print("\t".join(columns))
        for row in cells:
            print("\t".join(row))
