"""certmgr validate: load the config, build every provider and check what each local deploy
target needs on this machine (its config directory, its commands); write nothing."""

from __future__ import annotations

import argparse
import sys

from certmgr.cli.common import config
from certmgr.cli.local_access import monitor_access_errors
from certmgr.config.model import Config
from certmgr.errors import CertmgrError, raise_all
from certmgr.registry import Providers


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """No arguments beyond the global ones."""


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    raise_all([cfg.locate(e) for e in monitor_access_errors(cfg)], list(cfg.texts))
    with Providers(cfg) as providers:
        providers.build_all()
        raise_all(providers.setup_errors(), list(cfg.texts))
        for warning in _dane_warnings(cfg, providers):
            print(f"{cfg.path}: warning: {warning}", file=sys.stderr)
    certs = sum(len(m.key_types) for m in cfg.mtas)
    print(f"{cfg.path}: OK ({len(cfg.mtas)} MTAs, {certs} certificates, {len(cfg.issuers)} issuers, "
          f"{len(cfg.deploys)} deploy targets, {len(cfg.notifies)} notifiers)")
    return 0


def _dane_warnings(cfg: Config, providers: Providers) -> list[str]:
    """What the zones of MTAs with ``dane.publish`` say against publishing their TLSA records."""
    from certmgr.dns.wildcard import wildcard_problem

    out = []
    for mta in cfg.mtas:
        if mta.dane_publish is None:
            continue
        try:
            why = wildcard_problem(providers.dns(mta.dane_publish.publish), mta.hostname, mta.smtp_port)
        except CertmgrError as e:  # the zone's server is not reachable from here: say so, do not fail
            why = f"could not check [dns.{mta.dane_publish.publish}] for a wildcard covering {mta.hostname}: {e}"
        if why:
            out.append(f"[[mta]] {mta.hostname} dane.publish: {why}")
    return out
