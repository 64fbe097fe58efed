"""certmgr audit [HOST…] [--source ADDR]… [--json]: is opportunistic TLS on, for everyone?"""

from __future__ import annotations

import argparse
import ipaddress

from certmgr.cli.common import print_json, print_table, runtime


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST")
    parser.add_argument("--source", action="append", metavar="ADDR", type=_local_address,
                        help="probe from this local address too (give two or more to compare what each is offered)")
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def _local_address(text: str) -> str:
    """An IP address to probe from (a name or a typo would be silently not probed from)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address of this machine, "
                                         "e.g. 127.0.0.2 or 2001:db8::25") from None


def run(args: argparse.Namespace) -> int:
    from certmgr.partners.auditing import audit_mta
    from certmgr.probe.assess import EXIT_CODES

    with runtime(args, read_only=True) as rt:
        mtas = [rt.config.mta(h) for h in args.hosts] if args.hosts else list(rt.config.mtas)
        reports = [audit_mta(rt.config, m, rt.providers.deployer, args.source or []) for m in mtas]
    if args.json:
        print_json(reports)
    else:
        print_table("TLS configuration audit", ["hostname", "status", "problems"],
                    [(r["hostname"], r["status"].upper(), "; ".join(r["problems"]) or "-") for r in reports])
    return max((EXIT_CODES[r["status"]] for r in reports), default=0)
