"""certmgr validate: load the config and build every provider; write nothing."""

from __future__ import annotations

import argparse

from certmgr.cli.common import config
from certmgr.registry import Providers


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """No arguments beyond the global ones."""


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    with Providers(cfg) as providers:
        providers.build_all()
    certs = sum(len(m.key_types) for m in cfg.mtas)
    print(f"{cfg.path}: OK ({len(cfg.mtas)} MTAs, {certs} certificates, {len(cfg.issuers)} issuers, "
          f"{len(cfg.deploys)} deploy targets, {len(cfg.notifies)} notifiers)")
    return 0
