"""certmgr partners [DOMAIN…] [--json]: probe every MX and address of each partner; does it
meet the TLS level the partner requires?  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from certmgr.cli.common import config, print_json, print_table
from certmgr.config.model import PartnerSpec
from certmgr.errors import CertmgrError, UsageError


def _selected(partners: tuple[PartnerSpec, ...], domains: list[str]) -> list[PartnerSpec]:
    """The configured partners named on the command line (all when none); a domain that is not
    configured is checked at the default level, as ``check`` does for an unknown host."""
    from certmgr.pki.names import NameError_, normalize_hostname

    if not domains:
        return list(partners)
    known = {p.domain: p for p in partners}
    out = []
    for raw in domains:
        try:
            domain = normalize_hostname(raw)
        except NameError_ as e:
            raise UsageError(f"{raw!r} is not a domain: {e}") from e
        out.append(known.get(domain) or PartnerSpec(domain))
    return out


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("domains", nargs="*", metavar="DOMAIN")
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def run(args: argparse.Namespace) -> int:
    from certmgr.partners.check import CheckOptions, check_partners
    from certmgr.partners.report import exit_code, reports, rows

    cfg = config(args)  # a bad config or DOMAIN exits 2 (ConfigError/UsageError), before any probe
    specs = _selected(cfg.partners, args.domains)
    if not specs:
        print("certmgr partners: no [[partner]] in the config and no DOMAIN given", file=sys.stderr)
        return 0
    try:
        facts = check_partners(specs, CheckOptions.from_settings(cfg.settings))
    except CertmgrError as e:
        # a check that could not be made is UNKNOWN to a monitoring system
        print(f"certmgr partners: UNKNOWN: {e}", file=sys.stderr)
        return 3
    objects = reports(facts, datetime.now(UTC))
    if args.json:
        print_json(objects)
    else:
        print_table("Partner TLS", ["domain", "require", "status", "mx", "address", "starttls", "tls", "days",
                                    "meets", "problems"], rows(objects))
    return exit_code(objects)
